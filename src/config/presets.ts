import type { MethodName } from './constants.js';
import type { OAuthConfig, ProbeConfig, SessionConfig, SourceConfig, TokenConfig } from './schema.js';

/**
 * Provider presets: endpoints, default scopes and a probe for well-known APIs.
 *
 * A preset holds one *template* per auth path. A template is applied only to a section the
 * source itself declares, because every path needs something only the operator has: `token`
 * needs the secret reference, `oauth` the client id, `session` a cookie source (`cdp` or
 * `cookieHeader`). So `latchkey add github --preset github --token env:GITHUB_TOKEN` gets the
 * token path with GitHub's probe and never asks for a client id, and adding `--client-id`
 * turns on the OAuth path with GitHub's endpoints. Anything the source sets wins.
 */
export interface Preset {
  name: string;
  title: string;
  /** Order of preference among the paths the source configures. */
  methods: MethodName[];
  /** Merged under `sources.<name>.oauth` (the operator adds `clientId`, maybe `clientSecret`). */
  oauth?: Omit<OAuthConfig, 'clientId'>;
  /** Merged under `sources.<name>.token` (the operator adds `secret`). */
  token?: Omit<TokenConfig, 'secret'>;
  /** Merged under `sources.<name>.session` (the operator adds `cdp.endpoint` or `cookieHeader`). */
  session?: Omit<SessionConfig, 'cdp'> & { cdp?: { tabUrl?: string; timeoutMs?: number } };
  /** Probe for the bearer paths (`token`, `oauth`), used unless the source sets its own. */
  probe?: ProbeConfig;
  /** Probe for a source whose only path is `session` (it must be on the session's origin). */
  sessionProbe?: ProbeConfig;
  /** `--issuer` is required (the endpoints come from discovery). */
  requiresIssuer?: boolean;
  /** Where a person creates a token or registers an OAuth app. */
  docsUrl: string;
  /** What an operator should know (shown by `latchkey add --help`'s preset list, in docs). */
  notes?: string[];
}

/**
 * The presets. Endpoints were checked against each provider's documentation; where a provider
 * deviates from RFC 6749 the note says how, so a surprise has a written explanation.
 */
/** The Notion API version the probe asks for (Notion requires the header on every call). */
export const NOTION_VERSION = '2022-06-28';

/** The built-in provider presets, by name (`latchkey add <source> --preset <name>`). */
export const presets: Record<string, Preset> = {
  github: {
    name: 'github',
    title: 'GitHub (personal access token, or an OAuth app)',
    methods: ['token', 'oauth'],
    token: { scheme: 'Bearer' },
    oauth: {
      authorizationEndpoint: 'https://github.com/login/oauth/authorize',
      tokenEndpoint: 'https://github.com/login/oauth/access_token',
      deviceAuthorizationEndpoint: 'https://github.com/login/device/code',
      clientAuth: 'client_secret_post',
      scope: 'read:user',
    },
    probe: { url: 'https://api.github.com/user', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://github.com/settings/tokens',
    notes: [
      'OAuth-app tokens do not expire and come without a refresh token; GitHub Apps with expiring user tokens rotate the refresh token on every use.',
      'GitHub does not implement RFC 7009 revocation; revoke at https://github.com/settings/applications.',
    ],
  },
  gitlab: {
    name: 'gitlab',
    title: 'GitLab.com (personal access token, or an OAuth application)',
    methods: ['token', 'oauth'],
    token: { scheme: 'Bearer' },
    oauth: {
      issuer: 'https://gitlab.com',
      authorizationEndpoint: 'https://gitlab.com/oauth/authorize',
      tokenEndpoint: 'https://gitlab.com/oauth/token',
      deviceAuthorizationEndpoint: 'https://gitlab.com/oauth/authorize_device',
      revocationEndpoint: 'https://gitlab.com/oauth/revoke',
      scope: 'read_user',
    },
    probe: { url: 'https://gitlab.com/api/v4/user', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://gitlab.com/-/user_settings/personal_access_tokens',
    notes: ['Access tokens live 2 hours; refresh tokens rotate on every use. For a self-managed GitLab, override oauth.* and probe.url with your host.'],
  },
  google: {
    name: 'google',
    title: 'Google (OAuth client; APIs under googleapis.com)',
    methods: ['oauth'],
    oauth: {
      issuer: 'https://accounts.google.com',
      authorizationEndpoint: 'https://accounts.google.com/o/oauth2/v2/auth',
      tokenEndpoint: 'https://oauth2.googleapis.com/token',
      deviceAuthorizationEndpoint: 'https://oauth2.googleapis.com/device/code',
      revocationEndpoint: 'https://oauth2.googleapis.com/revoke',
      clientAuth: 'client_secret_post',
      scope: 'openid email',
      // Google issues a refresh token only for access_type=offline, and re-issues one on a
      // repeated login only with prompt=consent.
      authorizationParams: { access_type: 'offline', prompt: 'consent' },
    },
    probe: { url: 'https://openidconnect.googleapis.com/v1/userinfo', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://console.cloud.google.com/apis/credentials',
    notes: [
      'Refresh tokens of apps in "Testing" publishing status expire after 7 days.',
      'Add the scopes of the APIs you call (e.g. https://www.googleapis.com/auth/drive.readonly) with --scope.',
    ],
  },
  microsoft: {
    name: 'microsoft',
    title: 'Microsoft Entra ID (common tenant, v2 endpoints; Microsoft Graph)',
    methods: ['oauth'],
    oauth: {
      // No issuer: the common endpoint's metadata names a templated "{tenantid}" issuer, which
      // cannot be validated. Hence no `openid` either: an ID token could not be checked, and
      // Latchkey needs the Graph access token and the refresh token, not the user's identity.
      // No clientAuth: a client secret (web app registration) goes as HTTP Basic, which Entra
      // accepts; without one the client is public (mobile and desktop registration, PKCE only).
      authorizationEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
      tokenEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
      deviceAuthorizationEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/devicecode',
      scope: 'offline_access User.Read',
    },
    probe: { url: 'https://graph.microsoft.com/v1.0/me', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade',
    notes: [
      'offline_access is what yields a refresh token; refresh tokens rotate and single-page-app ones live 24 hours.',
      'For ID tokens, pin your tenant: --issuer https://login.microsoftonline.com/<tenant id>/v2.0 and add openid to --scope.',
      'A desktop/mobile (public client) registration needs no secret; a web registration takes --client-secret.',
      'Entra ID has no RFC 7009 revocation endpoint; `latchkey logout` removes the grant locally.',
    ],
  },
  slack: {
    name: 'slack',
    title: 'Slack (bot/user token, or an OAuth v2 app with token rotation)',
    methods: ['token', 'oauth'],
    token: { scheme: 'Bearer' },
    oauth: {
      authorizationEndpoint: 'https://slack.com/oauth/v2/authorize',
      tokenEndpoint: 'https://slack.com/api/oauth.v2.access',
      clientAuth: 'client_secret_post',
      // Slack separates scopes with commas.
      scope: 'users:read',
    },
    // Slack answers a dead token with HTTP 200 and {"ok": false, "error": "invalid_auth"}.
    probe: { url: 'https://slack.com/api/auth.test', method: 'POST', expectStatus: 200, expectJson: { ok: true } },
    docsUrl: 'https://api.slack.com/apps',
    notes: [
      'Refresh tokens exist only when the app has token rotation turned on: access tokens then expire after 12 hours and each refresh returns a new refresh token (the old one is revoked).',
      'Slack answers most API errors with HTTP 200 and {"ok": false}; the auth.test probe therefore also requires {"ok": true} in the answer (probe.expectJson), and so should your own calls.',
      'Slack\'s revocation (auth.revoke) is not RFC 7009; revoke from the app settings page.',
    ],
  },
  hubspot: {
    name: 'hubspot',
    title: 'HubSpot (private-app token, OAuth app, or the signed-in browser session)',
    methods: ['token', 'oauth', 'session'],
    token: { scheme: 'Bearer' },
    oauth: {
      authorizationEndpoint: 'https://app.hubspot.com/oauth/authorize',
      tokenEndpoint: 'https://api.hubapi.com/oauth/v1/token',
      clientAuth: 'client_secret_post',
      scope: 'oauth crm.objects.contacts.read',
    },
    session: {
      origin: 'https://app.hubspot.com',
      csrfCookie: 'csrf.app',
      csrfHeader: 'X-HubSpot-CSRF-hubspotapi',
      loginUrl: 'https://app.hubspot.com/login',
      cdp: { tabUrl: 'https://app.hubspot.com/*' },
    },
    probe: { url: 'https://api.hubapi.com/account-info/v3/details', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview',
    notes: [
      'Prefer the private-app token (methods: token, then session as the fallback).',
      'Session path: keep a signed-in app.hubspot.com tab open in a Chrome started with --remote-debugging-port; a reload of that tab re-issues the csrf.app cookie.',
      'HubSpot retires /oauth/v1/token on 2027-02-16; the date-versioned endpoint (https://api.hubapi.com/oauth/2026-03/token) replaces it: set oauth.tokenEndpoint to move early.',
      'The account-info probe is on api.hubapi.com and needs a bearer token; the session cookies never go there. To probe the session path too, set probe.sessionUrl (or, for a session-only source, probe.url) to an app.hubspot.com/api/… URL you call (HubSpot\'s internal APIs take ?portalId=<your hub id>), with "expectJson": true so that a sign-in page does not count as healthy.',
    ],
  },
  atlassian: {
    name: 'atlassian',
    title: 'Atlassian Cloud (Jira, Confluence) OAuth 2.0 (3LO)',
    methods: ['oauth'],
    oauth: {
      authorizationEndpoint: 'https://auth.atlassian.com/authorize',
      tokenEndpoint: 'https://auth.atlassian.com/oauth/token',
      clientAuth: 'client_secret_post',
      scope: 'offline_access read:me read:jira-user',
      authorizationParams: { audience: 'api.atlassian.com', prompt: 'consent' },
    },
    probe: { url: 'https://api.atlassian.com/oauth/token/accessible-resources', method: 'GET', expectStatus: 200 },
    docsUrl: 'https://developer.atlassian.com/console/myapps/',
    notes: [
      'offline_access yields a rotating refresh token (reuse of an old one fails with invalid_grant).',
      'Product APIs live under https://api.atlassian.com/ex/jira/<cloudid>/…; the probe lists the sites (cloud ids) the grant can reach.',
      'API tokens (email + token, Basic) are site-specific: add them as a plain --token source with --scheme Basic and your site\'s probe.',
    ],
  },
  notion: {
    name: 'notion',
    title: 'Notion (internal integration secret, or a public OAuth integration)',
    methods: ['token', 'oauth'],
    token: { scheme: 'Bearer' },
    oauth: {
      authorizationEndpoint: 'https://api.notion.com/v1/oauth/authorize',
      tokenEndpoint: 'https://api.notion.com/v1/oauth/token',
      // Notion's token endpoint takes the client id and secret as HTTP Basic credentials.
      clientAuth: 'client_secret_basic',
      authorizationParams: { owner: 'user' },
    },
    probe: { url: 'https://api.notion.com/v1/users/me', method: 'GET', expectStatus: 200, headers: { 'Notion-Version': NOTION_VERSION } },
    docsUrl: 'https://www.notion.so/profile/integrations',
    notes: [
      `Every Notion API call needs a Notion-Version header (the probe sends ${NOTION_VERSION}); add it to your own requests.`,
      'Notion has no scopes: the pages the user shares with the integration decide what it can read.',
    ],
  },
  linear: {
    name: 'linear',
    title: 'Linear (personal API key, or an OAuth2 application)',
    methods: ['token', 'oauth'],
    // Linear's personal API keys go in Authorization without a scheme; OAuth tokens are Bearer.
    token: { scheme: '' },
    oauth: {
      authorizationEndpoint: 'https://linear.app/oauth/authorize',
      tokenEndpoint: 'https://api.linear.app/oauth/token',
      revocationEndpoint: 'https://api.linear.app/oauth/revoke',
      clientAuth: 'client_secret_post',
      // Linear separates scopes with commas.
      scope: 'read',
    },
    // The GraphQL endpoint: a POST whose `{ viewer { id } }` query proves the credential.
    probe: {
      url: 'https://api.linear.app/graphql',
      method: 'POST',
      // An authentication error comes back as a GraphQL error (HTTP 400, or 200 with
      // {"data": null, "errors": [...]}), so the verdict rests on data.viewer being there.
      expectStatus: [200, 400],
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { id } }' }),
      expectJson: { data: { viewer: {} } },
    },
    docsUrl: 'https://linear.app/settings/account/security',
    notes: [
      'OAuth apps get 24-hour access tokens with rotating refresh tokens (mandatory since 2026-04-01).',
      'GraphQL errors (including an authentication error) may come back with HTTP 400 or 200 rather than 401; the probe is judged by data.viewer being in the answer.',
    ],
  },
  oidc: {
    name: 'oidc',
    title: 'Any OpenID Connect issuer (endpoints by discovery: --issuer <url>)',
    methods: ['oauth'],
    oauth: { scope: 'openid offline_access' },
    requiresIssuer: true,
    docsUrl: 'https://openid.net/specs/openid-connect-discovery-1_0.html',
    notes: ['The probe is the issuer\'s userinfo endpoint when discovery publishes one.', 'Some issuers (Google) refuse offline_access; override --scope there.'],
  },
};

/** The preset named `name`, or undefined. */
export function getPreset(name: string): Preset | undefined {
  return Object.prototype.hasOwnProperty.call(presets, name) ? presets[name] : undefined;
}

/** The names, for help text and error messages. */
export function presetNames(): string[] {
  return Object.keys(presets);
}

/**
 * A source with its preset applied: each template under the section the source declares
 * (one level deep; `oauth.authorizationParams` and `session.cdp` one level further), the
 * preset's method order unless the source sets `methods`, and the preset's probe unless the
 * source sets one.
 */
export function applyPreset(preset: Preset, src: SourceConfig): SourceConfig {
  const out: SourceConfig = { ...src };
  if (src.oauth && preset.oauth) {
    const params = { ...preset.oauth.authorizationParams, ...src.oauth.authorizationParams };
    out.oauth = { ...preset.oauth, ...src.oauth };
    if (Object.keys(params).length > 0) out.oauth.authorizationParams = params;
  }
  if (src.token && preset.token) out.token = { ...preset.token, ...src.token };
  if (src.session && preset.session) {
    const { cdp: presetCdp, ...presetSession } = preset.session;
    out.session = { ...presetSession, ...src.session };
    if (src.session.cdp) out.session.cdp = { ...presetCdp, ...src.session.cdp };
  }
  if (!src.methods) out.methods = preset.methods;
  if (!src.probe) {
    const bearer = Boolean(out.token || out.oauth);
    const probe = bearer ? preset.probe : out.session ? preset.sessionProbe : undefined;
    if (probe) out.probe = probe;
  }
  return out;
}
