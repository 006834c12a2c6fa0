import * as v from 'valibot';
import { clientAuthMethods, methodNames, SECRET_REF, SOURCE_NAME } from './constants.js';
export type { MethodName } from './constants.js';

/**
 * The one schema of `config.json`. Unknown keys are rejected (a typo must not be silently
 * ignored), and every error names the field path. Secret values are references only.
 */


const secretRef = v.pipe(
  v.string(),
  v.regex(SECRET_REF, 'expected a secret reference: env:NAME, file:/absolute/path or keyring:service/account (never the secret itself)'),
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

export const SessionConfigSchema = v.strictObject({
  /** The site the session belongs to (cookies are read for this origin). */
  origin: httpUrl,
  /** Names of the cookies to send; empty = every cookie of the origin. */
  cookies: v.optional(v.array(v.string())),
  /** Cookie whose value is the CSRF token, and the header that must carry it. */
  csrfCookie: v.optional(v.string()),
  csrfHeader: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]+$/, 'expected an HTTP header name'))),
  /** A `Cookie:` header value held as a secret (when not read from a browser). */
  cookieHeader: v.optional(secretRef),
  /** Renewal (a): a URL fetched with the session cookies whose Set-Cookie re-issues the CSRF cookie. */
  renewUrl: v.optional(httpUrl),
  /** Renewal (b): the operator's running Chrome over the DevTools Protocol. */
  cdp: v.optional(
    v.strictObject({
      endpoint: httpUrl,
      /** URL pattern of the signed-in tab (`*` wildcards), e.g. `https://app.hubspot.com/*`. */
      tabUrl: v.string(),
      timeoutMs: v.optional(positiveInt),
    }),
  ),
  /** Where a person signs in again. */
  loginUrl: v.optional(httpUrl),
});

export const ProbeConfigSchema = v.strictObject({
  url: httpUrl,
  method: v.optional(v.picklist(['GET', 'HEAD', 'POST'])),
  expectStatus: v.optional(v.union([positiveInt, v.array(positiveInt)])),
  timeoutMs: v.optional(positiveInt),
});

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
  probeTimeoutMs: v.optional(positiveInt),
  alerts: v.optional(AlertsConfigSchema),
});

export const ConfigSchema = v.strictObject({
  $schema: v.optional(v.string()),
  version: v.optional(v.literal(1)),
  sources: v.optional(v.record(v.pipe(v.string(), v.regex(SOURCE_NAME, 'source names are letters, digits, ".", "_" and "-"')), SourceConfigSchema)),
  keeper: v.optional(KeeperConfigSchema),
});

export type OAuthConfig = v.InferOutput<typeof OAuthConfigSchema>;
export type TokenConfig = v.InferOutput<typeof TokenConfigSchema>;
export type SessionConfig = v.InferOutput<typeof SessionConfigSchema>;
export type ProbeConfig = v.InferOutput<typeof ProbeConfigSchema>;
export type SourceConfig = v.InferOutput<typeof SourceConfigSchema>;
export type KeeperConfig = v.InferOutput<typeof KeeperConfigSchema>;
export type AlertsConfig = v.InferOutput<typeof AlertsConfigSchema>;
export type ConfigFile = v.InferOutput<typeof ConfigSchema>;
