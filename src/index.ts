// The published types use Node's (NodeJS.ProcessEnv, Buffer): kept in index.d.ts so a consumer's
// compiler loads @types/node (a dependency) even with `"types": []` in its tsconfig.
/// <reference types="node" preserve="true" />
/**
 * Latchkey: keeps API credentials alive for automations.
 *
 * ```ts
 * import { openLatchkey } from 'latchkey';
 * const lk = await openLatchkey();           // reads LATCHKEY_HOME
 * const token = await lk.token('hubspot');   // always fresh, never replays a refresh token
 * ```
 *
 * This entry is the public API. Stable (semver): everything below except what is marked
 * experimental. Internals (the token engine, the method registry, the fetch and probe
 * machinery, the keeper's stages) are not exported; import nothing from `latchkey/dist/...`.
 * The README's "Library" section says the same.
 *
 * @packageDocumentation
 */

/** The library's entry: open a profile, then `token`, `fetch`, `preflight`, `status`, `installGrant`. Stable. */
export { openLatchkey, Latchkey } from './latchkey.js';
/** Options of {@link openLatchkey}; a source's status line; a grant obtained elsewhere. Stable. */
export type { OpenLatchkeyOptions, SourceStatus, SourceState, GrantInput } from './latchkey.js';

/** Secrets as a type: printing, logging or serializing one shows `[redacted]`. Stable. */
export { Secret, secret } from './core/secret.js';

/** The one error type, its table of codes (exit code and HTTP status per code) and helpers. Stable. */
export { LatchkeyError, ERRORS, ExitCode, fixFor, isTransient } from './core/errors.js';
/** Error codes, table entries, operator actions and error options. Stable. */
export type { ErrorCode, ErrorSpec, OperatorAction, LatchkeyErrorOptions } from './core/errors.js';

/** The injected time source (tests move time without sleeping). Stable. */
export { systemClock } from './core/clock.js';
/** The clock interface. Stable. */
export type { Clock } from './core/clock.js';

/** Loading and validating a config (errors name the file and the field). Stable. */
export { loadConfig, parseConfig } from './config/load.js';
/** A loaded config and one resolved source. Stable. */
export type { Config, ResolvedSource } from './config/load.js';
/** The config file's shape, per source and per method. Stable. */
export type { SourceConfig, OAuthConfig, TokenConfig, SessionConfig, ProbeConfig, KeeperConfig, MethodName } from './config/schema.js';
/** Built-in provider presets (`latchkey add --preset`). Stable. */
export { presets, getPreset, presetNames } from './config/presets.js';
/** A provider preset. Stable. */
export type { Preset } from './config/presets.js';

/**
 * The file store (the default store under the profile). Experimental: the store contract is
 * being reshaped (store contract v2) and may change in a minor release.
 */
export { FileStore } from './store/file-store.js';
/**
 * Choosing and opening a store: `openStore` picks what the CLI picks (`LATCHKEY_STORE`, the
 * config's `store.url`, else the file store); `openPostgresStore` opens a PostgreSQL store.
 * Experimental (fleet mode).
 */
export { openStore, openPostgresStore } from './store/open-store.js';
/** Where a store is chosen from; the PostgreSQL store and its options. Experimental (fleet mode). */
export type { StoreChoice } from './store/open-store.js';
/** The PostgreSQL store (claim before use, sealed secrets) and its options. Experimental (fleet mode). */
export type { PgStore, PgStoreOptions } from './store/pg/pg-store.js';
/** The store contract and its records. Experimental (store contract v2). */
export type { Store, SourceRecord, StoredGrant, StoredSession, WithLockOptions } from './store/store.js';
/** What `onRefresh` receives after each refresh attempt (metrics, logs). Stable. */
export type { EngineEvent, RefreshOutcome } from './engine/fresh-token.js';

/** Where a profile lives (`LATCHKEY_HOME`, else the per-user config directory) and its files. Stable. */
export { latchkeyHome, homePaths } from './paths.js';

/** The interactive logins a person runs: authorization code + PKCE on a loopback redirect, and the device flow. Stable. */
export { loginWithAuthorizationCode, DEFAULT_LOGIN_TIMEOUT_MS } from './login/authorization-code.js';
/** Options of {@link loginWithAuthorizationCode}. Stable. */
export type { AuthorizationCodeLoginOptions } from './login/authorization-code.js';
/** The device authorization grant (RFC 8628). Stable. */
export { loginWithDeviceCode } from './login/device-authorization.js';
/** Options and the prompt of {@link loginWithDeviceCode}. Stable. */
export type { DeviceCodeLoginOptions, DevicePrompt } from './login/device-authorization.js';
/** What a login stored (never the tokens). Stable. */
export type { LoginResult, LoginFlow } from './login/login-grant.js';
/** Logout: revoke at the IdP (RFC 7009), then remove the stored grant. Stable. */
export { logout } from './login/logout.js';
/** Options and result of {@link logout}. Stable. */
export type { LogoutOptions, LogoutResult } from './login/logout.js';
/** A failed revocation (transient or rejected). Stable. */
export { RevocationError } from './oauth/revocation.js';
/** Why a revocation failed. Stable. */
export type { RevocationFailureKind } from './oauth/revocation.js';

/** Thrown by `lk.fetch` when the API still answers 401 after one recovery (`LK_UNAUTHORIZED`). Stable. */
export { UnauthorizedError } from './client/fetch.js';
/** Pre-flight's default budget, and the exit code (0 / 3 / 4) of a set of verdicts. Stable. */
export { DEFAULT_BUDGET_MS, exitCodeFor } from './client/preflight.js';
/** Verdicts of `lk.probe` / `lk.preflight` and their options. Stable. */
export type { HealthStatus, ProbeResult, ProbeOptions, PreflightOptions, PreflightReport, MethodFailureSummary } from './client/probe-types.js';

/**
 * The keeper (daemon): open it in-process or start it with its HTTP server. Loaded on demand:
 * importing this entry loads no metrics registry, HTTP server or dashboard. Stable.
 */
export { openKeeper, startKeeper } from './keeper/open.js';
/** Reading the keeper's `health.json` (the same data as `GET /api/health`) and whether it is stale. Stable. */
export { readHealthReport, isReportStale } from './keeper/health-report.js';
/** The `health.json` format. Stable (its field names are a contract). */
export type { HealthReport, HealthReportSource } from './keeper/health-report.js';
/** HMAC-SHA256 signature of a webhook body (`X-Latchkey-Signature`), for a receiver to verify. Stable. */
export { signBody } from './keeper/alerts.js';
/** Alert settings and the webhook payload. Stable. */
export type { AlertSettings, AlertPayload, WebhookSettings } from './keeper/alerts.js';
/** The keeper's options and handles. Stable. */
export type { Keeper, KeeperOptions, KeeperSettings, KeeperStages, Readiness, CycleSummary } from './keeper/keeper.js';
/** The daemon (keeper + HTTP server) and its options. Stable. */
export type { KeeperDaemon, KeeperDaemonOptions } from './keeper/daemon.js';
/** The keeper's HTTP server handle and options. Stable. */
export type { KeeperHttpServer, KeeperHttpOptions, KeeperHttpBackend } from './keeper/http.js';
/** A custom probe for the keeper (tests, special sources). Stable. */
export type { ProbeFn, ProbeCallOptions } from './keeper/probe-stage.js';
/** The keeper's structured log sink. Stable. */
export type { KeeperLog, LogLevel } from './keeper/log.js';
/** What the keeper remembers per source, and a change of status (alerts). Stable. */
export type { SourceKeeperState, StateChange } from './keeper/state.js';
