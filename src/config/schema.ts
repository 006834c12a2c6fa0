import * as v from 'valibot';
import { clientAuthMethods, methodNames, secretRefProblem, SOURCE_NAME } from './constants.js';
export type { MethodName } from './constants.js';

/**
 * The one schema of `config.json`. Unknown keys are rejected (a typo must not be silently
 * ignored), and every error names the field path. Secret values are references only.
 */


const secretRef = v.pipe(
  v.string(),
  // The message says what is wrong (a relative file: path is not a leaked secret) without echoing the value.
  v.check((s) => secretRefProblem(s) === undefined, (issue) => secretRefProblem(String(issue.input)) ?? 'expected a secret reference'),
);
const httpUrl = v.pipe(v.string(), v.url('expected an absolute URL'), v.regex(/^https?:\/\//i, 'expected an http(s) URL'));
const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));


export const OAuthConfigSchema = v.strictObject({
  issuer: v.optional(httpUrl),
  tokenEndpoint: v.optional(httpUrl),
  authorizationEndpoint: v.optional(httpUrl),
  deviceAuthorizationEndpoint: v.optional(httpUrl),
  revocationEndpoint: v.optional(httpUrl),
  clientId: v.pipe(v.string(), v.minLength(1, 'expected a non-empty client id')),
  clientSecret: v.optional(secretRef),
  clientAuth: v.optional(v.picklist(clientAuthMethods)),
  scope: v.optional(v.string()),
  /** Refresh this many seconds before expiry (capped at a third of the token's lifetime). */
  skewSeconds: v.optional(v.pipe(v.number(), v.minValue(0))),
  /** Extra authorization-request parameters (e.g. `access_type=offline` for Google). */
  authorizationParams: v.optional(v.record(v.string(), v.string())),
});

export const TokenConfigSchema = v.strictObject({
  secret: secretRef,
  header: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]+$/, 'expected an HTTP header name'))),
  /** `Bearer` by default; an empty string sends the raw token. */
  scheme: v.optional(v.string()),
  /** When the token is known to expire (ISO 8601), so health can warn ahead of time. */
  expiresAt: v.optional(v.pipe(v.string(), v.isoTimestamp('expected an ISO 8601 timestamp'))),
});

const headerName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]+$/, 'expected an HTTP header name'));
// RFC 7230 token: what a cookie name may be (RFC 6265 §4.1.1).
const cookieName = v.pipe(v.string(), v.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name'));
const cdpEndpoint = v.pipe(v.string(), v.url('expected an absolute URL'), v.regex(/^(https?|wss?):\/\//i, 'expected http://host:port (Chrome\'s --remote-debugging-port) or a ws:// DevTools URL'));
const hostName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, 'expected a host name'));

/**
 * The `session` method: a browser session's cookies plus a CSRF token taken from one of them
 * (HubSpot: cookie `csrf.app` → header `X-HubSpot-CSRF-hubspotapi`). `origin` may come from
 * a preset; the loader checks it is set after the preset is applied.
 */
export const SessionConfigSchema = v.pipe(
  v.strictObject({
    /** The site the session belongs to (cookies are read for this origin and sent only to it). */
    origin: v.optional(httpUrl),
    /** Other hosts (exact names) the session cookies may be sent to, besides `origin` and its subdomains. */
    hosts: v.optional(v.array(hostName)),
    /** Names of the cookies to send; empty or absent = every cookie of the origin. `csrfCookie` is always included. */
    cookies: v.optional(v.array(cookieName)),
    /** Cookie whose value is the CSRF token, and the header that must carry it (set both or neither). */
    csrfCookie: v.optional(cookieName),
    csrfHeader: v.optional(headerName),
    /** A `Cookie:` header value held as a secret (when not read from a browser). */
    cookieHeader: v.optional(secretRef),
    /**
     * Renewal (a): a URL on the origin's host fetched with the session cookies, whose
     * Set-Cookie re-issues the CSRF cookie.
     */
    renewUrl: v.optional(httpUrl),
    /** Bound on the renewal request (default 10 000 ms). */
    timeoutMs: v.optional(positiveInt),
    /** Renewal (b): the operator's running Chrome over the DevTools Protocol. */
    cdp: v.optional(
      v.strictObject({
        endpoint: cdpEndpoint,
        /** URL pattern of the signed-in tab (`*` wildcards), e.g. `https://app.hubspot.com/*`; default `<origin>/*`. */
        tabUrl: v.optional(v.pipe(v.string(), v.minLength(1))),
        /** Bound on every DevTools step: connect, read cookies, reload, readyState (default 10 000 ms). */
        timeoutMs: v.optional(positiveInt),
      }),
    ),
    /** Where a person signs in again. */
    loginUrl: v.optional(httpUrl),
  }),
  v.check((s) => (s.csrfCookie === undefined) === (s.csrfHeader === undefined), 'set "csrfCookie" and "csrfHeader" together (the cookie whose value goes into the header)'),
  v.check(
    (s) => !s.renewUrl || !s.origin || new URL(s.renewUrl).hostname === new URL(s.origin).hostname,
    '"renewUrl" must be on the same host as "origin" (the session cookies are sent to it)',
  ),
);

export const ProbeConfigSchema = v.pipe(
  v.strictObject({
    url: httpUrl,
    /**
     * The probe URL for the `session` method when `url` is on a host its cookies do not go to
     * (HubSpot: the token path answers on api.hubapi.com, the browser session on app.hubspot.com/api/…).
     */
    sessionUrl: v.optional(httpUrl),
    method: v.optional(v.picklist(['GET', 'HEAD', 'POST'])),
    expectStatus: v.optional(v.union([positiveInt, v.array(positiveInt)])),
    /**
     * The answer must also be JSON (`true`), or JSON containing these members (an object matched
     * as a subset, recursively; other values by equality), e.g. Slack's `{ "ok": true }`: APIs
     * that answer 200 with `{"ok": false}` or a sign-in page for a dead credential.
     */
    expectJson: v.optional(v.union([v.literal(true), v.record(v.string(), v.unknown())])),
    timeoutMs: v.optional(positiveInt),
    /** Extra request headers (never credentials: the auth method adds those), e.g. `Notion-Version`. */
    headers: v.optional(v.record(headerName, v.string())),
    /** Request body sent as is (e.g. a GraphQL query for a POST probe); set its Content-Type in `headers`. */
    body: v.optional(v.pipe(v.string(), v.maxLength(8192))),
  }),
  v.check((p) => p.expectJson === undefined || p.method !== 'HEAD', 'a HEAD probe has no body: "expectJson" needs GET or POST'),
);

export const SourceConfigSchema = v.strictObject({
  preset: v.optional(v.string()),
  description: v.optional(v.string()),
  methods: v.optional(v.array(v.picklist(methodNames))),
  oauth: v.optional(OAuthConfigSchema),
  token: v.optional(TokenConfigSchema),
  session: v.optional(SessionConfigSchema),
  probe: v.optional(ProbeConfigSchema),
});

export const AlertsConfigSchema = v.strictObject({
  webhook: v.optional(
    v.strictObject({
      url: httpUrl,
      /** HMAC-SHA256 key for the signature header. */
      secret: v.optional(secretRef),
    }),
  ),
  /** Uptime Kuma push URL (`https://kuma.example/api/push/<token>`), as a reference or URL. */
  uptimeKuma: v.optional(v.strictObject({ pushUrl: v.union([httpUrl, secretRef]) })),
});

export const KeeperConfigSchema = v.strictObject({
  intervalSeconds: v.optional(positiveInt),
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535))),
  host: v.optional(v.string()),
  concurrency: v.optional(positiveInt),
  /** Probe slots one host may hold while probes of other hosts wait (default: half of `concurrency`). */
  perHostConcurrency: v.optional(positiveInt),
  probeTimeoutMs: v.optional(positiveInt),
  alerts: v.optional(AlertsConfigSchema),
});

/**
 * Where grants live when not in the profile's file store: a PostgreSQL URL behind a secret
 * reference (it carries a password), e.g. `{ "url": "env:LATCHKEY_PG_URL" }`. `LATCHKEY_STORE`
 * in the environment wins over it.
 */
export const StoreConfigSchema = v.strictObject({
  url: secretRef,
});

/**
 * The `gateway` section: what `latchkey gateway` runs with when its flags do not say (flags win).
 * Secrets are references, like everywhere in the config.
 */
export const GatewayConfigSchema = v.strictObject({
  upstream: v.optional(httpUrl),
  issuer: v.optional(httpUrl),
  clientId: v.optional(v.pipe(v.string(), v.minLength(1, 'expected a non-empty client id'))),
  clientSecret: v.optional(secretRef),
  clientAuth: v.optional(v.picklist(clientAuthMethods)),
  host: v.optional(v.string()),
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535))),
  trustedProxies: v.optional(v.array(v.pipe(v.string(), v.regex(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, 'expected an IP address or CIDR (10.0.0.0/8)')))),
  publicPaths: v.optional(v.array(v.pipe(v.string(), v.regex(/^\/[^\s?#\\]*$/, 'expected a path prefix starting with /')))),
  scopes: v.optional(v.string()),
  /** The sealing key (32 bytes, base64 or hex) behind a reference; default: `gateway.key` in LATCHKEY_HOME. */
  sealKey: v.optional(secretRef),
  refreshTokenLifetimeSeconds: v.optional(positiveInt),
  refreshSkewSeconds: v.optional(v.pipe(v.number(), v.minValue(0))),
  postLogoutRedirectUri: v.optional(httpUrl),
  upstreamCsrf: v.optional(v.boolean()),
  /** Sign-ins that may start, per client and in all (GatewayOptions.loginRateLimit). */
  loginRateLimit: v.optional(
    v.strictObject({
      perClientPerMinute: v.optional(v.pipe(v.number(), v.minValue(0.001, 'expected a positive number'))),
      perClientBurst: v.optional(positiveInt),
      allPerMinute: v.optional(v.pipe(v.number(), v.minValue(0.001, 'expected a positive number'))),
    }),
  ),
});

export const ConfigSchema = v.strictObject({
  $schema: v.optional(v.string()),
  version: v.optional(v.literal(1)),
  sources: v.optional(v.record(v.pipe(v.string(), v.regex(SOURCE_NAME, 'source names are letters, digits, ".", "_" and "-"')), SourceConfigSchema)),
  keeper: v.optional(KeeperConfigSchema),
  store: v.optional(StoreConfigSchema),
  gateway: v.optional(GatewayConfigSchema),
});

/** A source's `oauth` method: token endpoint, client, and the optional login endpoints. */
export type OAuthConfig = v.InferOutput<typeof OAuthConfigSchema>;
/** A source's `token` method: a static token behind a secret reference. */
export type TokenConfig = v.InferOutput<typeof TokenConfigSchema>;
/** A source's `session` method: browser cookies + CSRF, renewed over HTTP or the DevTools Protocol. */
export type SessionConfig = v.InferOutput<typeof SessionConfigSchema>;
/** A source's `probe`: the cheap authenticated request that proves its credential works. */
export type ProbeConfig = v.InferOutput<typeof ProbeConfigSchema>;
/** One entry of `sources` in the config file. */
export type SourceConfig = v.InferOutput<typeof SourceConfigSchema>;
/** The `keeper` section of the config file (interval, port, alerts). */
export type KeeperConfig = v.InferOutput<typeof KeeperConfigSchema>;
/** The `gateway` section of the config file. */
export type GatewayConfig = v.InferOutput<typeof GatewayConfigSchema>;
export type AlertsConfig = v.InferOutput<typeof AlertsConfigSchema>;
export type ConfigFile = v.InferOutput<typeof ConfigSchema>;
/** The `store` section of the config file (a PostgreSQL URL behind a secret reference). */
export type StoreConfig = v.InferOutput<typeof StoreConfigSchema>;
