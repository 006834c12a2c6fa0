import { ExitCode } from '../../core/errors.js';
import { parseArgs } from 'node:util';
import { isRelativeFileRef, SECRET_REF, secretRefProblem, SOURCE_NAME } from '../../config/constants.js';
import { applyPreset, getPreset, presets, type Preset } from '../../config/presets.js';
import { importCommandFor, loginCommandFor, loginNeeds } from '../../config/source-fix.js';
import type { SourceConfig } from '../../config/schema.js';
import { COMMENTS_DROPPED, updateConfigFile } from '../../config/write.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { usageError, type CliIO, type Command } from '../io.js';

const options = {
  'token-endpoint': { type: 'string' },
  'authorization-endpoint': { type: 'string' },
  'device-authorization-endpoint': { type: 'string' },
  'revocation-endpoint': { type: 'string' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'client-auth': { type: 'string' },
  scope: { type: 'string' },
  token: { type: 'string' },
  header: { type: 'string' },
  scheme: { type: 'string' },
  preset: { type: 'string' },
  probe: { type: 'string' },
  'probe-status': { type: 'string' },
  // the session path (browser cookies + CSRF header)
  cdp: { type: 'string' },
  'tab-url': { type: 'string' },
  'cookie-header': { type: 'string' },
  'renew-url': { type: 'string' },
  origin: { type: 'string' },
  'csrf-cookie': { type: 'string' },
  'csrf-header': { type: 'string' },
  cookies: { type: 'string' },
  force: { type: 'boolean' },
} as const;

/** The endpoints `login`, `login --device` and `logout` use, besides the token endpoint. */
const ENDPOINT_FLAGS = [
  ['authorization-endpoint', 'authorizationEndpoint'],
  ['device-authorization-endpoint', 'deviceAuthorizationEndpoint'],
  ['revocation-endpoint', 'revocationEndpoint'],
] as const;

const SESSION_FLAGS = ['cdp', 'tab-url', 'cookie-header', 'renew-url', 'origin', 'csrf-cookie', 'csrf-header', 'cookies'] as const;

/** One line per preset for `latchkey add --help`. */
function presetList(): string {
  const width = Math.max(...Object.keys(presets).map((n) => n.length));
  return Object.values(presets)
    .map((p) => `    ${p.name.padEnd(width)}  ${p.title}; paths: ${p.methods.join(', ')}`)
    .join('\n');
}

/** What to pass to turn on each path of a preset. */
function presetPathsHelp(p: Preset): string {
  const ways: string[] = [];
  if (p.token) ways.push('--token <ref> (token path)');
  if (p.oauth) ways.push(`--client-id <id>${p.requiresIssuer ? ' --issuer <url>' : ''} (oauth path)`);
  if (p.session) ways.push('--cdp <endpoint> or --cookie-header <ref> (session path)');
  return ways.join(', ');
}

export const command: Command = {
  summary: 'declare a source (OAuth client, static token or preset)',
  usage: `latchkey add <source> --token-endpoint <url> --client-id <id> [--authorization-endpoint <url>] [--device-authorization-endpoint <url>]
                    [--revocation-endpoint <url>] [--client-secret <ref>] [--client-auth none|client_secret_basic|client_secret_post] [--scope <s>]
       latchkey add <source> --issuer <url> --client-id <id> [...]          (endpoints by discovery)
       latchkey add <source> --authorization-endpoint <url> ...             (an existing OAuth source: set its login/logout endpoints)
       latchkey add <source> --token <ref> [--header <name>] [--scheme <s>]  (PAT / API key)
       latchkey add <source> --origin <url> (--cdp <endpoint> [--tab-url <pattern>] | --cookie-header <ref>)
                    [--csrf-cookie <name> --csrf-header <name>] [--renew-url <url>] [--cookies a,b]   (browser session)
       latchkey add <source> --preset <name> [--token <ref>] [--client-id <id> ...] [--cdp <endpoint> | --cookie-header <ref>]
  common: [--probe <url>] [--probe-status <code>] [--force]
  \`latchkey login\` needs --authorization-endpoint (browser) or --device-authorization-endpoint (--device), or --issuer
  to discover them; without them, install a grant obtained elsewhere: latchkey import <source> --grant <file>.
  <ref> is a secret reference: env:NAME, file:/path or keyring:service/account (never the secret itself);
  store the value behind it with \`latchkey secrets set <ref>\`.
  A preset fills in endpoints, scopes and a probe for each path you turn on; it never needs
  --client-id unless you want its OAuth path. Presets:
${presetList()}`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw usageError(`expected exactly one source name\nusage: ${this.usage}`);
    if (!SOURCE_NAME.test(source)) throw usageError(`invalid source name "${source}": letters, digits, ".", "_" and "-"`);
    for (const key of ['client-secret', 'token', 'cookie-header'] as const) {
      const ref = values[key];
      if (ref !== undefined && isRelativeFileRef(ref)) throw usageError(`--${key}: ${secretRefProblem(ref)}; nothing was added`);
      if (ref !== undefined && !SECRET_REF.test(ref)) {
        throw usageError(`--${key} takes a secret reference (env:NAME, file:/absolute/path or keyring:service/account), not the secret itself; the value was not stored`);
      }
    }
    const given = Object.keys(values).filter((k) => values[k as keyof typeof values] !== undefined);
    const endpointsOnly = given.length > 0 && given.every((k) => ENDPOINT_FLAGS.some(([flag]) => flag === k));
    if (endpointsOnly) return setEndpoints(source, values, io);
    const src: SourceConfig = {};
    let preset: Preset | undefined;
    if (values.preset) {
      preset = getPreset(values.preset);
      if (!preset) throw usageError(`unknown preset "${values.preset}"; known presets: ${Object.keys(presets).join(', ')}`);
      src.preset = values.preset;
    }
    if (values['token-endpoint'] || values.issuer || values['client-id'] || ENDPOINT_FLAGS.some(([flag]) => values[flag] !== undefined)) {
      if (!values['client-id']) throw usageError('--client-id is required with --token-endpoint, --issuer or another endpoint (to change the endpoints of an existing source, give only the endpoint flags)');
      if (preset && !preset.oauth) throw usageError(`preset "${preset.name}" has no OAuth path; use ${presetPathsHelp(preset)}`);
      if (preset?.requiresIssuer && !values.issuer) throw usageError(`preset "${preset.name}" needs --issuer <url> (its endpoints come from discovery)`);
      const presetHasEndpoint = Boolean(preset?.oauth?.tokenEndpoint || preset?.oauth?.issuer);
      if (!values['token-endpoint'] && !values.issuer && !presetHasEndpoint) throw usageError('--token-endpoint or --issuer is required with --client-id');
      const oauth: NonNullable<SourceConfig['oauth']> = { clientId: values['client-id'] };
      if (values.issuer) {
        const { discoverIssuer } = await import('../../oauth/discovery.js');
        const d = await discoverIssuer(values.issuer, (i, init) => fetch(i, init));
        oauth.issuer = d.issuer;
        oauth.tokenEndpoint = d.tokenEndpoint;
        if (d.authorizationEndpoint) oauth.authorizationEndpoint = d.authorizationEndpoint;
        if (d.deviceAuthorizationEndpoint) oauth.deviceAuthorizationEndpoint = d.deviceAuthorizationEndpoint;
        if (d.revocationEndpoint) oauth.revocationEndpoint = d.revocationEndpoint;
        // The `oidc` preset's probe: the issuer's userinfo endpoint.
        if (preset?.requiresIssuer && !values.probe && typeof d.server.userinfo_endpoint === 'string') src.probe = { url: d.server.userinfo_endpoint };
      }
      if (values['token-endpoint']) {
        // Refused now rather than at the first refresh: tokens never travel over plain http off loopback.
        const { checkEndpoint } = await import('../../oauth/endpoint.js');
        checkEndpoint(values['token-endpoint'], '--token-endpoint');
        oauth.tokenEndpoint = values['token-endpoint'];
      }
      await applyEndpointFlags(oauth, values);
      if (values['client-secret']) oauth.clientSecret = values['client-secret'];
      if (values['client-auth']) oauth.clientAuth = values['client-auth'] as NonNullable<typeof oauth.clientAuth>;
      if (values.scope) oauth.scope = values.scope;
      src.oauth = oauth;
    }
    if (values.token) {
      if (preset && !preset.token) throw usageError(`preset "${preset.name}" has no token path; use ${presetPathsHelp(preset)}`);
      src.token = { secret: values.token };
      if (values.header) src.token.header = values.header;
      if (values.scheme !== undefined) src.token.scheme = values.scheme;
    }
    if (SESSION_FLAGS.some((f) => values[f] !== undefined)) {
      if (preset && !preset.session) throw usageError(`preset "${preset.name}" has no session path; use ${presetPathsHelp(preset)}`);
      if (!values.cdp && !values['cookie-header']) throw usageError('the session path needs --cdp <endpoint> (a Chrome started with --remote-debugging-port) or --cookie-header <ref>');
      if (!values.origin && !preset?.session?.origin) throw usageError('--origin <url> is required for a session (the site whose cookies are used)');
      if ((values['csrf-cookie'] === undefined) !== (values['csrf-header'] === undefined) && !preset?.session?.csrfCookie) {
        throw usageError('give --csrf-cookie and --csrf-header together (the cookie whose value goes into the header)');
      }
      const session: NonNullable<SourceConfig['session']> = {};
      if (values.origin) session.origin = values.origin;
      if (values['cookie-header']) session.cookieHeader = values['cookie-header'];
      if (values['renew-url']) session.renewUrl = values['renew-url'];
      if (values['csrf-cookie']) session.csrfCookie = values['csrf-cookie'];
      if (values['csrf-header']) session.csrfHeader = values['csrf-header'];
      if (values.cookies) session.cookies = values.cookies.split(',').map((c) => c.trim()).filter((c) => c !== '');
      if (values.cdp) {
        session.cdp = { endpoint: values.cdp };
        if (values['tab-url']) session.cdp.tabUrl = values['tab-url'];
      } else if (values['tab-url']) {
        throw usageError('--tab-url applies only with --cdp');
      }
      src.session = session;
    }
    if (preset && !src.oauth && !src.token && !src.session) {
      throw usageError(`preset "${preset.name}": say which path to use: ${presetPathsHelp(preset)}`);
    }
    if (values.probe) {
      src.probe = { url: values.probe };
      if (values['probe-status']) {
        const n = Number(values['probe-status']);
        if (!Number.isInteger(n) || n < 100 || n > 599) throw usageError('--probe-status must be an HTTP status code');
        src.probe.expectStatus = n;
      }
    }
    if (!src.preset && !src.oauth && !src.token && !src.session) {
      throw usageError(`nothing to add: give --token-endpoint/--issuer with --client-id, --token <ref>, --cdp/--cookie-header for a session, or --preset\nusage: ${this.usage}`);
    }
    const paths = homePaths(latchkeyHome(io.env));
    let existed = false;
    const { droppedComments } = await updateConfigFile(paths.config, (raw) => {
      raw.sources ??= {};
      existed = Object.prototype.hasOwnProperty.call(raw.sources, source);
      if (existed && !values.force) throw usageError(`source "${source}" already exists in ${paths.config}; use --force to replace it`);
      raw.sources[source] = src;
    });
    io.stdout.write(`${existed ? 'replaced' : 'added'} source "${source}" in ${paths.config}\n`);
    if (droppedComments) io.stdout.write(COMMENTS_DROPPED);
    if (src.token && !src.token.secret.startsWith('env:')) io.stdout.write(`next: latchkey secrets set ${src.token.secret}   (the value is read from stdin or a hidden prompt)\n`);
    if (src.oauth) io.stdout.write(`${oauthNext(source, preset ? applyPreset(preset, src) : src)}\n`);
    if (src.session) io.stdout.write(`next: sign in to the site in the browser${src.session.cdp ? ' started with --remote-debugging-port' : ''}, then: latchkey preflight ${source}\n`);
    return ExitCode.ok;
  },
};

type AddValues = { [K in keyof typeof options]?: (typeof options)[K]['type'] extends 'boolean' ? boolean : string };

/** Sets the login/device/revocation endpoints given as flags (each must be https, or http on loopback). */
async function applyEndpointFlags(oauth: NonNullable<SourceConfig['oauth']>, values: AddValues): Promise<void> {
  const { checkEndpoint } = await import('../../oauth/endpoint.js');
  for (const [flag, key] of ENDPOINT_FLAGS) {
    const url = values[flag];
    if (typeof url !== 'string') continue;
    checkEndpoint(url, `--${flag}`);
    oauth[key] = url;
  }
}

/**
 * `latchkey add <source> --authorization-endpoint <url>` (only endpoint flags) on an existing
 * OAuth source: sets those endpoints and keeps the rest of the source, so the command that
 * `status` and pre-flight suggest for a source that cannot log in works as printed.
 */
async function setEndpoints(source: string, values: AddValues, io: CliIO): Promise<number> {
  const paths = homePaths(latchkeyHome(io.env));
  const update: Partial<NonNullable<SourceConfig['oauth']>> = {};
  await applyEndpointFlags(update as NonNullable<SourceConfig['oauth']>, values);
  let next: SourceConfig | undefined;
  const { droppedComments } = await updateConfigFile(paths.config, (raw) => {
    const existing = raw.sources?.[source];
    if (!existing) throw usageError(`source "${source}" is not in ${paths.config}; to add it, give --token-endpoint <url> (or --issuer <url>) and --client-id <id> too`);
    if (!existing.oauth) throw usageError(`source "${source}" has no OAuth path to set endpoints on; add one with --token-endpoint <url> --client-id <id> --force`);
    existing.oauth = { ...existing.oauth, ...update };
    const preset = existing.preset ? getPreset(existing.preset) : undefined;
    next = preset ? applyPreset(preset, existing) : existing;
  });
  const set = ENDPOINT_FLAGS.filter(([flag]) => values[flag] !== undefined).map(([, key]) => `oauth.${key}`);
  io.stdout.write(`updated source "${source}" in ${paths.config}: ${set.join(', ')}\n`);
  if (droppedComments) io.stdout.write(COMMENTS_DROPPED);
  io.stdout.write(`${oauthNext(source, next)}\n`);
  return ExitCode.ok;
}

/** What to run after adding an OAuth source: login when it can run, else what login needs. */
function oauthNext(source: string, src: SourceConfig | undefined): string {
  const login = loginCommandFor(source, src);
  return login ? `next: ${login}   (or: ${importCommandFor(source)})` : `note: ${loginNeeds(source)}`;
}
