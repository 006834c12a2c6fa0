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
export { loginWithAuthorizationCode, DEFAULT_LOGIN_TIMEOUT_MS } from './oauth/authorization-code.js';
export type { AuthorizationCodeLoginOptions } from './oauth/authorization-code.js';
export { loginWithDeviceCode } from './oauth/device-authorization.js';
export type { DeviceCodeLoginOptions, DevicePrompt } from './oauth/device-authorization.js';
export type { LoginResult, LoginFlow } from './oauth/login-grant.js';
export { logout, revokeToken, RevocationError } from './oauth/revocation.js';
export type { LogoutOptions, LogoutResult, RevocationFailureKind } from './oauth/revocation.js';
export { startLoopbackRedirect } from './oauth/loopback-redirect.js';
export type { LoopbackRedirect, ReceivedCallback, CallbackOutcome } from './oauth/loopback-redirect.js';
