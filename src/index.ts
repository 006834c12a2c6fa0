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
 */
export { openLatchkey, Latchkey, grantFromInput } from './latchkey.js';
export type { OpenLatchkeyOptions, SourceStatus, SourceState, GrantInput } from './latchkey.js';
export { Secret, secret } from './secret.js';
export { LatchkeyError, ExitCode, fixFor, isTransient } from './errors.js';
export type { ErrorCode, OperatorAction } from './errors.js';
export { systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { loadConfig, parseConfig } from './config/load.js';
export type { Config, ResolvedSource } from './config/load.js';
export type { SourceConfig, OAuthConfig, TokenConfig, SessionConfig, ProbeConfig, KeeperConfig, MethodName } from './config/schema.js';
export { FileStore } from './store/file-store.js';
export type { Store, SourceRecord, StoredGrant, StoredSession, WithLockOptions } from './store/store.js';
export { TokenEngine, effectiveSkewMs, refreshDueAt } from './engine/fresh-token.js';
export type { EngineEvent, RefreshOutcome } from './engine/fresh-token.js';
export { latchkeyHome, homePaths } from './paths.js';
export { loginWithAuthorizationCode, DEFAULT_LOGIN_TIMEOUT_MS } from './login/authorization-code.js';
export type { AuthorizationCodeLoginOptions } from './login/authorization-code.js';
export { loginWithDeviceCode } from './login/device-authorization.js';
export type { DeviceCodeLoginOptions, DevicePrompt } from './login/device-authorization.js';
export type { LoginResult, LoginFlow } from './login/login-grant.js';
export { logout } from './login/logout.js';
export { revokeToken, RevocationError } from './oauth/revocation.js';
export type { LogoutOptions, LogoutResult } from './login/logout.js';
export type { RevocationFailureKind } from './oauth/revocation.js';
export { startLoopbackRedirect } from './login/loopback-redirect.js';
export type { LoopbackRedirect, ReceivedCallback, CallbackOutcome } from './login/loopback-redirect.js';
export { UnauthorizedError, authorizedFetch, sendAuthorized } from './client/fetch.js';
export type { AuthorizedOutcome, SendOptions } from './client/fetch.js';
export { SourceAuth, REJECTION_HOLD_MS } from './client/auth-path.js';
export type { MethodFailure, Prepared } from './client/auth-path.js';
export { probeSource, DEFAULT_PROBE_TIMEOUT_MS } from './client/probe.js';
export type { ProbeContext } from './client/probe.js';
export { preflight, readKeeperReport, cachedVerdicts, exitCodeFor, DEFAULT_BUDGET_MS, DEFAULT_KEEPER_INTERVAL_S } from './client/preflight.js';
export type { KeeperReport } from './client/preflight.js';
export type { HealthStatus, ProbeResult, ProbeOptions, PreflightOptions, PreflightReport, MethodFailureSummary } from './client/probe-types.js';
export { methodRegistry, buildMethods, unavailableMethod } from './methods/index.js';
export type { MethodLoader } from './methods/index.js';
export { TokenMethod, PAT_EXPIRING_WITHIN_MS } from './methods/token.js';
export { OAuthMethod, OAUTH_EXPIRING_WITHIN_MS } from './methods/oauth.js';
export type { AuthMethod, Availability, AuthRequest, PreparedAuth, CredentialExpiry, MethodContext, MethodFactory } from './methods/method.js';
export { presets, getPreset, presetNames } from './config/presets.js';
export type { Preset } from './config/presets.js';
export { SessionMethod, createSessionMethod, DEFAULT_SESSION_TIMEOUT_MS } from './methods/session.js';
// The keeper. Its report format, schedule rules and alert signature load nothing heavy; the
// keeper itself (metrics registry, HTTP server, dashboard) is loaded by openKeeper/startKeeper.
export { openKeeper, startKeeper } from './keeper/open.js';
export { readHealthReport, parseHealthReport, buildHealthReport, isReportStale } from './keeper/health-report.js';
export type { HealthReport, HealthReportSource } from './keeper/health-report.js';
export { refreshAheadReason, refreshAheadAt, jitteredDelayMs, backoffCycles } from './keeper/scheduler.js';
export { signBody } from './keeper/alerts.js';
export type { AlertSettings, AlertPayload, WebhookSettings } from './keeper/alerts.js';
export type { Keeper, KeeperOptions, KeeperSettings, KeeperStages, Readiness, CycleSummary } from './keeper/keeper.js';
export type { KeeperDaemon, KeeperDaemonOptions } from './keeper/daemon.js';
export type { KeeperHttpServer, KeeperHttpOptions, KeeperHttpBackend } from './keeper/http.js';
export type { ProbeFn, ProbeCallOptions } from './keeper/probe-stage.js';
export type { KeeperLog, LogLevel } from './keeper/log.js';
export type { SourceKeeperState, StateChange } from './keeper/state.js';
