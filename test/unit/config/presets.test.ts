import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { resolveConfig } from '../../../src/config/load.js';
import { applyPreset, getPreset, presetNames, presets, type Preset } from '../../../src/config/presets.js';
import { SourceConfigSchema, type SourceConfig } from '../../../src/config/schema.js';
import { validateConfigText } from '../../../src/config/validate.js';
import { startIdp } from '../../fixtures/idp.js';
import { makeHome, runCli } from '../../helpers/home.js';

const ISSUER = 'https://issuer.example';

/** The smallest source that turns on one path of a preset (what `latchkey add` writes). */
function sourceFor(p: Preset, path: 'token' | 'oauth' | 'session'): SourceConfig {
  if (path === 'token') return { preset: p.name, token: { secret: 'env:API_TOKEN' } };
  if (path === 'oauth') return { preset: p.name, oauth: { clientId: 'client-1', ...(p.requiresIssuer ? { issuer: ISSUER, tokenEndpoint: `${ISSUER}/token` } : {}) } };
  return { preset: p.name, session: { cdp: { endpoint: 'http://127.0.0.1:9222' } } };
}

/** Every URL a preset mentions. */
function urlsOf(p: Preset): string[] {
  const out = [p.docsUrl];
  for (const section of [p.oauth, p.session, p.probe, p.sessionProbe]) {
    for (const [key, value] of Object.entries(section ?? {})) {
      if (typeof value === 'string' && /^[a-z]+:\/\//i.test(value)) out.push(value);
      if (key === 'cdp' && value && typeof value === 'object') {
        const tab = (value as { tabUrl?: string }).tabUrl;
        if (tab) out.push(tab);
      }
    }
  }
  return out;
}

test('the required presets exist, keyed by their own name', () => {
  for (const name of ['github', 'gitlab', 'google', 'microsoft', 'slack', 'hubspot', 'atlassian', 'notion', 'linear', 'oidc']) {
    const p = getPreset(name);
    assert.ok(p, name);
    assert.equal(p.name, name);
  }
  assert.equal(getPreset('constructor'), undefined, 'no prototype keys');
  assert.equal(getPreset('nope'), undefined);
  assert.deepEqual(presetNames(), Object.keys(presets));
});

for (const p of Object.values(presets)) {
  describe(`preset ${p.name}`, () => {
    test('every endpoint is https', () => {
      for (const url of urlsOf(p)) assert.match(url, /^https:\/\//, url);
    });

    test('its method list matches its templates', () => {
      assert.ok(p.methods.length > 0);
      assert.equal(new Set(p.methods).size, p.methods.length, 'no duplicates');
      assert.equal(p.methods.includes('token'), p.token !== undefined, 'token');
      assert.equal(p.methods.includes('oauth'), p.oauth !== undefined, 'oauth');
      assert.equal(p.methods.includes('session'), p.session !== undefined, 'session');
      if (p.oauth && !p.requiresIssuer) {
        assert.ok(p.oauth.tokenEndpoint, 'an OAuth template has a token endpoint (or requires --issuer)');
        assert.ok(p.oauth.authorizationEndpoint, 'and an authorization endpoint for `latchkey login`');
      }
      if (p.requiresIssuer) assert.equal(p.oauth?.tokenEndpoint, undefined, 'endpoints come from discovery');
      if (!p.requiresIssuer) assert.ok(p.probe, 'a probe for the bearer paths');
    });

    for (const path of p.methods) {
      test(`the ${path} path validates against the schema and resolves`, () => {
        const raw = { version: 1 as const, sources: { s: sourceFor(p, path) } };
        // The source as written passes the schema…
        const text = JSON.stringify(raw);
        validateConfigText(text, '/x/config.json');
        const config = resolveConfig(raw, '/x/config.json');
        const resolved = config.sources.get('s')!;
        assert.deepEqual(resolved.methods, [path]);
        // …and so does the source with the preset applied.
        const { name: _n, methods, ...merged } = resolved;
        const r = v.safeParse(SourceConfigSchema, { ...merged, methods });
        assert.ok(r.success, JSON.stringify(r.issues?.map((i) => [v.getDotPath(i), i.message])));
        if (path === 'oauth') assert.ok(resolved.oauth?.tokenEndpoint || resolved.oauth?.issuer);
        if (path === 'session') {
          assert.ok(resolved.session?.origin);
          assert.ok(resolved.session?.cdp?.endpoint === 'http://127.0.0.1:9222');
        }
        if (path !== 'session') assert.ok(resolved.probe || p.requiresIssuer, 'the preset probe applies');
      });
    }

    test('all its paths together keep the preset order', () => {
      const src: SourceConfig = { preset: p.name };
      for (const path of p.methods) Object.assign(src, sourceFor(p, path));
      const resolved = resolveConfig({ version: 1, sources: { s: src } }, '/x/config.json').sources.get('s')!;
      assert.deepEqual(resolved.methods, p.methods);
    });
  });
}

describe('provider specifics', () => {
  test('GitHub: PAT as Bearer, OAuth app endpoints, probe GET /user', () => {
    const p = presets.github!;
    assert.equal(p.token?.scheme, 'Bearer');
    assert.equal(p.oauth?.tokenEndpoint, 'https://github.com/login/oauth/access_token');
    assert.equal(p.oauth?.authorizationEndpoint, 'https://github.com/login/oauth/authorize');
    assert.equal(p.oauth?.deviceAuthorizationEndpoint, 'https://github.com/login/device/code');
    assert.deepEqual({ url: p.probe?.url, method: p.probe?.method }, { url: 'https://api.github.com/user', method: 'GET' });
  });

  test('GitLab.com: /oauth endpoints and /api/v4/user', () => {
    const p = presets.gitlab!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://gitlab.com/oauth/token');
    assert.equal(p.oauth?.revocationEndpoint, 'https://gitlab.com/oauth/revoke');
    assert.equal(p.probe?.url, 'https://gitlab.com/api/v4/user');
  });

  test('Google: offline access with consent, userinfo probe', () => {
    const p = presets.google!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://oauth2.googleapis.com/token');
    assert.equal(p.oauth?.authorizationEndpoint, 'https://accounts.google.com/o/oauth2/v2/auth');
    assert.deepEqual(p.oauth?.authorizationParams, { access_type: 'offline', prompt: 'consent' });
    assert.match(p.probe?.url ?? '', /userinfo/);
  });

  test('Microsoft Entra ID: common tenant v2, offline_access, Graph /me', () => {
    const p = presets.microsoft!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://login.microsoftonline.com/common/oauth2/v2.0/token');
    assert.equal(p.oauth?.authorizationEndpoint, 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize');
    assert.match(p.oauth?.scope ?? '', /\boffline_access\b/);
    assert.equal(p.probe?.url, 'https://graph.microsoft.com/v1.0/me');
  });

  test('Slack: oauth.v2.access and auth.test; the rotation caveat is written down', () => {
    const p = presets.slack!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://slack.com/api/oauth.v2.access');
    assert.equal(p.probe?.url, 'https://slack.com/api/auth.test');
    assert.ok(p.notes?.some((n) => /rotation/.test(n) && /12 hours/.test(n)));
  });

  test('HubSpot: private-app token, OAuth, and the session + X-HubSpot-CSRF-hubspotapi path', () => {
    const p = presets.hubspot!;
    assert.deepEqual(p.methods, ['token', 'oauth', 'session']);
    assert.equal(p.token?.scheme, 'Bearer');
    assert.equal(p.probe?.url, 'https://api.hubapi.com/account-info/v3/details');
    assert.equal(p.probe?.method, 'GET');
    assert.equal(p.oauth?.authorizationEndpoint, 'https://app.hubspot.com/oauth/authorize');
    assert.equal(p.oauth?.tokenEndpoint, 'https://api.hubapi.com/oauth/v1/token');
    assert.equal(p.session?.origin, 'https://app.hubspot.com');
    assert.equal(p.session?.csrfCookie, 'csrf.app');
    assert.equal(p.session?.csrfHeader, 'X-HubSpot-CSRF-hubspotapi');
    assert.equal(p.session?.cdp?.tabUrl, 'https://app.hubspot.com/*');
  });

  test('HubSpot session-only: no bearer probe on api.hubapi.com (the cookies may not go there)', () => {
    const r = resolveConfig({ version: 1, sources: { hs: { preset: 'hubspot', session: { cdp: { endpoint: 'http://127.0.0.1:9222' } } } } }, '/x/c.json').sources.get('hs')!;
    assert.equal(r.probe, undefined);
    assert.deepEqual(r.methods, ['session']);
    const both = resolveConfig(
      { version: 1, sources: { hs: { preset: 'hubspot', token: { secret: 'env:HS' }, session: { cdp: { endpoint: 'http://127.0.0.1:9222' } } } } },
      '/x/c.json',
    ).sources.get('hs')!;
    assert.deepEqual(both.methods, ['token', 'session']);
    assert.equal(both.probe?.url, 'https://api.hubapi.com/account-info/v3/details');
  });

  test('Atlassian: offline_access, audience, accessible-resources probe', () => {
    const p = presets.atlassian!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://auth.atlassian.com/oauth/token');
    assert.equal(p.oauth?.authorizationEndpoint, 'https://auth.atlassian.com/authorize');
    assert.match(p.oauth?.scope ?? '', /\boffline_access\b/);
    assert.equal(p.oauth?.authorizationParams?.audience, 'api.atlassian.com');
    assert.equal(p.probe?.url, 'https://api.atlassian.com/oauth/token/accessible-resources');
  });

  test('Notion: token endpoint with HTTP Basic client auth, Notion-Version on the probe', () => {
    const p = presets.notion!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://api.notion.com/v1/oauth/token');
    assert.equal(p.oauth?.clientAuth, 'client_secret_basic');
    assert.equal(p.probe?.url, 'https://api.notion.com/v1/users/me');
    assert.match(p.probe?.headers?.['Notion-Version'] ?? '', /^\d{4}-\d{2}-\d{2}$/);
  });

  test('Linear: token endpoint, bare API key, GraphQL viewer probe by POST', () => {
    const p = presets.linear!;
    assert.equal(p.oauth?.tokenEndpoint, 'https://api.linear.app/oauth/token');
    assert.equal(p.token?.scheme, '');
    assert.equal(p.probe?.method, 'POST');
    assert.equal(p.probe?.url, 'https://api.linear.app/graphql');
    assert.deepEqual(JSON.parse(p.probe?.body ?? '{}'), { query: '{ viewer { id } }' });
    assert.equal(p.probe?.headers?.['Content-Type'], 'application/json');
  });

  test('oidc: needs an issuer; endpoints by discovery', () => {
    const p = presets.oidc!;
    assert.equal(p.requiresIssuer, true);
    assert.match(p.oauth?.scope ?? '', /\bopenid\b/);
  });
});

describe('applyPreset', () => {
  test('the source wins, one level deep; params and cdp merge one level further', () => {
    const merged = applyPreset(presets.google!, {
      preset: 'google',
      oauth: { clientId: 'c', scope: 'openid https://www.googleapis.com/auth/drive.readonly', authorizationParams: { login_hint: 'a@b.example' } },
    });
    assert.equal(merged.oauth?.scope, 'openid https://www.googleapis.com/auth/drive.readonly');
    assert.equal(merged.oauth?.tokenEndpoint, 'https://oauth2.googleapis.com/token');
    assert.deepEqual(merged.oauth?.authorizationParams, { access_type: 'offline', prompt: 'consent', login_hint: 'a@b.example' });

    const hs = applyPreset(presets.hubspot!, { preset: 'hubspot', session: { cdp: { endpoint: 'http://127.0.0.1:9333', timeoutMs: 5000 } } });
    assert.deepEqual(hs.session?.cdp, { tabUrl: 'https://app.hubspot.com/*', endpoint: 'http://127.0.0.1:9333', timeoutMs: 5000 });
    assert.equal(hs.session?.csrfHeader, 'X-HubSpot-CSRF-hubspotapi');
  });

  test('a template is applied only to a section the source declares', () => {
    const merged = applyPreset(presets.github!, { preset: 'github', token: { secret: 'env:GH' } });
    assert.equal(merged.oauth, undefined, 'no half-configured OAuth path without a client id');
    assert.equal(merged.token?.scheme, 'Bearer');
    const own = applyPreset(presets.github!, { preset: 'github', token: { secret: 'env:GH' }, probe: { url: 'https://api.github.com/rate_limit' } });
    assert.equal(own.probe?.url, 'https://api.github.com/rate_limit');
  });

  test('a session source without origin and without a preset is a config error', () => {
    assert.throws(() => resolveConfig({ version: 1, sources: { s: { session: { cookieHeader: 'env:C' } } } }, '/x/c.json'), /session needs "origin"/);
  });
});

describe('latchkey add --preset', () => {
  test('--help lists every preset', async () => {
    const r = await runCli(['add', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const name of Object.keys(presets)) assert.match(r.stdout, new RegExp(`^\\s+${name}\\s`, 'm'), name);
  });

  test('each preset: token and session paths need no --client-id; the OAuth path takes one', async (t) => {
    const home = await makeHome({ version: 1, sources: {} });
    t.after(() => home.cleanup());
    const env = { LATCHKEY_HOME: home.home };
    for (const p of Object.values(presets)) {
      if (p.token) {
        const r = await runCli(['add', `${p.name}-token`, '--preset', p.name, '--token', 'keyring:latchkey/x'], { env });
        assert.equal(r.code, 0, `${p.name}: ${r.stderr}`);
        assert.match(r.stdout, /next: latchkey secrets set keyring:latchkey\/x/);
      }
      if (p.oauth && !p.requiresIssuer) {
        const r = await runCli(['add', `${p.name}-oauth`, '--preset', p.name, '--client-id', 'cid'], { env });
        assert.equal(r.code, 0, `${p.name}: ${r.stderr}`);
        assert.match(r.stdout, /next: latchkey login/);
      }
      if (p.session) {
        const r = await runCli(['add', `${p.name}-session`, '--preset', p.name, '--cdp', 'http://127.0.0.1:9222'], { env });
        assert.equal(r.code, 0, `${p.name}: ${r.stderr}`);
      }
      const bare = await runCli(['add', `${p.name}-bare`, '--preset', p.name], { env });
      assert.equal(bare.code, 1);
      assert.match(bare.stderr, /say which path to use/);
    }
    const config = JSON.parse(await readFile(home.configPath, 'utf8')) as { sources: Record<string, SourceConfig> };
    const resolved = resolveConfig(config, home.configPath);
    assert.deepEqual(resolved.sources.get('hubspot-session')?.methods, ['session']);
    assert.equal(resolved.sources.get('hubspot-session')?.session?.csrfCookie, 'csrf.app');
    assert.deepEqual(resolved.sources.get('github-token')?.methods, ['token']);
  });

  test('oidc: endpoints by discovery from --issuer, userinfo as the probe (real oidc-provider)', async (t) => {
    const idp = await startIdp();
    t.after(() => idp.close());
    const home = await makeHome({ version: 1, sources: {} });
    t.after(() => home.cleanup());
    const r = await runCli(['add', 'corp', '--preset', 'oidc', '--issuer', idp.issuer, '--client-id', 'public-client'], { env: { LATCHKEY_HOME: home.home } });
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(await readFile(home.configPath, 'utf8')) as { sources: Record<string, SourceConfig> };
    const src = config.sources.corp!;
    assert.equal(src.oauth?.issuer, idp.issuer);
    assert.equal(src.oauth?.tokenEndpoint, idp.tokenEndpoint);
    assert.equal(src.probe?.url, idp.userinfoEndpoint);
    const resolved = resolveConfig(config, home.configPath).sources.get('corp')!;
    assert.equal(resolved.oauth?.scope, 'openid offline_access');
    assert.deepEqual(resolved.methods, ['oauth']);
  });

  test('wrong combinations are refused with the way that works', async (t) => {
    const home = await makeHome({ version: 1, sources: {} });
    t.after(() => home.cleanup());
    const env = { LATCHKEY_HOME: home.home };
    const google = await runCli(['add', 'g', '--preset', 'google', '--token', 'env:X'], { env });
    assert.equal(google.code, 1);
    assert.match(google.stderr, /has no token path; use --client-id/);
    const oidc = await runCli(['add', 'o', '--preset', 'oidc', '--client-id', 'x'], { env });
    assert.equal(oidc.code, 1);
    assert.match(oidc.stderr, /needs --issuer/);
    const unknown = await runCli(['add', 'u', '--preset', 'nope', '--token', 'env:X'], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown preset "nope"; known presets: github/);
    const session = await runCli(['add', 's', '--preset', 'github', '--cdp', 'http://127.0.0.1:9222'], { env });
    assert.equal(session.code, 1);
    assert.match(session.stderr, /has no session path/);
  });
});
