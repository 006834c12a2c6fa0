import { systemClock, type Clock } from './core/clock.js';
import { bearerMethod, getSource, loadConfig, type Config, type ResolvedSource } from './config/load.js';
import { resolveSecretRef } from './config/secret-ref.js';
import { holdProfileSecrets } from './config/profile-secrets.js';
import { sanitizeRemoteText } from './core/sanitize.js';
import { configuredSkewMs } from './engine/expiry.js';
import { TokenEngine, refreshDueAt, type EngineEvent, type OAuthClientSettings } from './engine/fresh-token.js';
import { expiresAtOf } from './engine/expiry.js';
import { clampExpiresAt, clampTime, readExpiresIn } from './lifetime.js';
import { ExitCode, LatchkeyError, type OperatorAction } from './core/errors.js';
import type { FetchLike } from './oauth/endpoint.js';
import { homePaths, latchkeyHome, type HomePaths } from './paths.js';
import { Secret } from './core/secret.js';
import { FileStore } from './store/file-store.js';
import { openStore, storeConfigured } from './store/open-store.js';
import type { SourceMeta, SourceRecord, Store, StoredGrant } from './store/store.js';
import type { MethodName } from './config/constants.js';
import type { SourceAuth } from './client/auth-path.js';
import type { PreflightOptions, PreflightReport, ProbeOptions, ProbeResult } from './client/probe-types.js';
import { fixForSource } from './config/source-fix.js';
import { lazy } from './core/lazy.js';
import { isLoopbackHost } from './net/loopback.js';
import type { GrantInput, GrantOrigin, LoginContext } from './context.js';

type FetchModule = typeof import('./client/fetch.js');

/** What a call loads on first use (a CLI that only prints a token loads none of them). */
const fetchModule = lazy(() => import('./client/fetch.js'));
const probeModule = lazy(() => import('./client/probe.js'));
const methodsModule = lazy(() => import('./methods/index.js'));
const authPathModule = lazy(() => import('./client/auth-path.js'));

/** Options of {@link openLatchkey}: the profile, and what tests and embedders inject (fetch, clock, store, config). */
export interface OpenLatchkeyOptions {
  /** Profile directory (default: `LATCHKEY_HOME`, else the per-user config directory). */
  home?: string;
  env?: NodeJS.ProcessEnv;
  /** Injected for tests; defaults to the global fetch. */
  fetch?: FetchLike;
  clock?: Clock;
  /** A store other than the file store under `home` (e.g. PostgreSQL). */
  store?: Store;
  /** An already-loaded config (default: `<home>/config.json`). */
  config?: Config;
  /** Called after every refresh attempt (metrics, logs). */
  onRefresh?: (event: EngineEvent) => void;
  /** Cool-down after a transient refresh failure (default 30 s). */
  cooldownMs?: number;
  /** Token endpoint timeout (default 15 s). */
  tokenTimeoutMs?: number;
  /** Pause before confirming a refused refresh token (default 1 s; see TokenEngineOptions). */
  confirmRefusalDelayMs?: number;
}

/** A source's state in `lk.status()` (from the store and config alone, no network I/O). */
export type SourceState = 'ok' | 'expiring' | 'expired' | 'revoked' | 'no_grant' | 'failing' | 'error';

/** One line of `lk.status()` / `latchkey status`: what a source uses, when it expires, and what to do if it is broken. */
export interface SourceStatus {
  source: string;
  methods: MethodName[];
  /** The method that `token()` uses for this source (null for session-only sources). */
  authPath: MethodName | null;
  state: SourceState;
  expiresAt: string | null;
  lastRefreshAt: string | null;
  refreshCount: number;
  message: string;
  operatorAction: OperatorAction | null;
  fix: string | null;
}

export type { GrantInput } from './context.js';

const STATIC_MEMO_MS = 60_000;

interface StaticMemo {
  refreshAt: number;
  promise: Promise<string>;
}

/**
 * The library's entry point: fresh credentials for the sources declared in the config.
 * One instance per process is the intended use (its memo and in-process flights are shared
 * by every caller).
 */
export class Latchkey implements LoginContext {
  readonly config: Config;
  readonly store: Store;
  readonly paths: HomePaths;
  readonly clock: Clock;
  readonly fetchImpl: FetchLike;
  readonly env: NodeJS.ProcessEnv;
  readonly engine: TokenEngine;
  readonly #bearer = new Map<string, 'token' | 'oauth'>();
  readonly #staticMemo = new Map<string, StaticMemo>();
  readonly #settingsCache = new Map<string, Promise<OAuthClientSettings>>();
  readonly #clientSecrets = new Map<string, Promise<Secret>>();
  readonly #auth = new Map<string, SourceAuth>();
  readonly #authBuilding = new Map<string, Promise<SourceAuth>>();
  #fetchModule: FetchModule | undefined;
  /**
   * Probes' and the token endpoint's transport when no fetch is injected: a lean node:http client
   * (src/net/lean-fetch.ts), loaded on first use (a CLI that serves a memoised token never loads it).
   */
  readonly #lean = lazy(() => import('./net/lean-fetch.js').then(({ leanFetch }) => leanFetch({ fallback: this.fetchImpl })));
  readonly #fetchInjected: boolean;
  /** Held, never read: while they live, upstream text is redacted of them (src/config/profile-secrets.ts). */
  // eslint-disable-next-line no-unused-private-class-members
  readonly #profileSecrets: readonly Secret[];

  constructor(config: Config, options: OpenLatchkeyOptions & { paths: HomePaths }) {
    this.config = config;
    this.paths = options.paths;
    this.env = options.env ?? process.env;
    this.clock = options.clock ?? systemClock;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.#fetchInjected = options.fetch !== undefined;
    this.store = options.store ?? new FileStore({ path: this.paths.store, locksDir: this.paths.locks });
    this.engine = new TokenEngine({
      store: this.store,
      clock: this.clock,
      // An injected fetch takes every request; otherwise the token endpoint is called through the
      // lean client, which opens its connection while a refresh claims its lock (preconnect).
      fetch: this.#fetchInjected ? this.fetchImpl : (input, init) => this.#lean().then((f) => f(input, init)),
      ...(this.#fetchInjected ? {} : { preconnect: (url: string) => this.#preconnect(url) }),
      settings: (source) => this.#oauthSettings(source),
      onEvent: options.onRefresh,
      cooldownMs: options.cooldownMs,
      tokenTimeoutMs: options.tokenTimeoutMs,
      confirmRefusalDelayMs: options.confirmRefusalDelayMs,
    });
    this.#profileSecrets = holdProfileSecrets(config.raw, this.env);
    for (const [name, src] of config.sources) {
      const kind = bearerMethod(src);
      if (kind) this.#bearer.set(name, kind);
    }
  }

  /**
   * A fresh bearer credential for `source`: the OAuth access token (refreshed as needed) or
   * the static token. On a warm memo this does no I/O and allocates nothing.
   */
  token(source: string): Promise<string> {
    const kind = this.#bearer.get(source);
    if (kind === 'oauth') return this.engine.token(source);
    const m = this.#staticMemo.get(source);
    if (m !== undefined && this.clock.now() < m.refreshAt) return m.promise;
    return this.#slowToken(source, kind);
  }

  async #slowToken(source: string, kind: 'token' | undefined): Promise<string> {
    const src = getSource(this.config, source);
    if (kind !== 'token' || !src.token) {
      throw new LatchkeyError('LK_USAGE', `source "${source}" has no token or oauth method (it uses ${src.methods.join(', ') || 'nothing'}); use \`latchkey fetch ${source} <url>\``, {
        source,
      });
    }
    const value = await resolveSecretRef(src.token.secret, this.env).catch((err: unknown) => {
      if (err instanceof LatchkeyError) throw new LatchkeyError(err.code, err.message, { source, operatorAction: 'replace_token', exitCode: ExitCode.actionRequired, fix: err.fix });
      throw err;
    });
    const token = value.reveal();
    this.#staticMemo.set(source, { refreshAt: this.clock.now() + STATIC_MEMO_MS, promise: Promise.resolve(token) });
    return token;
  }

  /**
   * `fetch` with the credentials of the source's current auth path and one bounded 401
   * recovery: on a 401 the method recovers once (oauth: forced refresh under the lock;
   * session: renewal; token: re-read its secret) and the request is retried exactly once
   * (with the next method when recovery found nothing). A second 401 throws
   * `UnauthorizedError` (`LK_UNAUTHORIZED`) carrying the operator action and its fix; any
   * other status is returned as is. Bodies must be replayable for the retry (a string,
   * bytes, Blob, FormData, URLSearchParams; a Request's body is buffered); a ReadableStream
   * body is sent once and never retried. Credentials go only over https (or http to
   * loopback) and never follow a redirect to another origin.
   */
  fetch(source: string, input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const auth = this.#auth.get(source);
    const client = this.#fetchModule;
    if (auth !== undefined && client !== undefined) return client.authorizedFetch(auth, this.fetchImpl, input, init);
    return this.#firstFetch(source, input, init);
  }

  async #firstFetch(source: string, input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const [auth, client] = await Promise.all([this.sourceAuth(source), fetchModule()]);
    this.#fetchModule = client;
    return client.authorizedFetch(auth, this.fetchImpl, input, init);
  }

  /**
   * The method `fetch` would use for `source` now (no network I/O): the first method in the
   * source's order of preference that is available and was not just rejected; null when none is.
   */
  async authPath(source: string): Promise<MethodName | null> {
    return (await this.sourceAuth(source)).current();
  }

  /** The methods of a source in order of preference, and the choice among them (built once per source). */
  sourceAuth(source: string): Promise<SourceAuth> {
    const ready = this.#auth.get(source);
    if (ready !== undefined) return Promise.resolve(ready);
    let building = this.#authBuilding.get(source);
    if (building === undefined) {
      building = this.#buildSourceAuth(source);
      this.#authBuilding.set(source, building);
      building.then(
        (auth) => this.#auth.set(source, auth),
        () => undefined,
      ).finally(() => this.#authBuilding.delete(source));
    }
    return building;
  }

  async #buildSourceAuth(source: string): Promise<SourceAuth> {
    const src = getSource(this.config, source);
    const [{ buildMethods }, { SourceAuth }] = await Promise.all([methodsModule(), authPathModule()]);
    return new SourceAuth(source, await buildMethods({ lk: this, source: src }), this.clock);
  }

  /**
   * One live probe of `source` (its configured `probe` request through the fetch logic, or a
   * no-network credential check when it has none): a verdict, never a throw for upstream trouble.
   */
  async probe(source: string, options: ProbeOptions = {}): Promise<ProbeResult> {
    const src = getSource(this.config, source);
    const [auth, { probeSource }, fetchImpl] = await Promise.all([this.sourceAuth(source), probeModule(), this.#probeTransport()]);
    return probeSource({ source: src, auth, fetch: fetchImpl, clock: this.clock }, options);
  }

  /**
   * Built on first use (a CLI that never probes does not load node:http). A keeper at
   * thousands of sources probes every cycle: the built-in fetch's per-request memory was most
   * of its RSS (issue 9), the lean client's is not. An injected fetch is always honoured.
   */
  #probeTransport(): Promise<FetchLike> {
    if (this.#fetchInjected) return Promise.resolve(this.fetchImpl);
    return this.#lean();
  }

  /** Opens the token endpoint's connection ahead, for an endpoint the refresh will accept (https, or http on loopback). */
  #preconnect(url: string): void {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return;
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname))) return;
    this.#lean().then(
      (f) => f.preconnect(u),
      () => undefined,
    );
  }

  /**
   * "Can I call these sources?" within `budgetMs` (default 3000): fresh healthy verdicts from
   * the keeper's report, live probes in parallel for the rest. Exit code 0 / 3 / 4.
   */
  async preflight(sources: readonly string[], options: PreflightOptions = {}): Promise<PreflightReport> {
    const { preflight } = await import('./client/preflight.js');
    return preflight(this, sources, options);
  }

  /** Resolves a secret reference against this instance's environment (src/config/secret-ref.ts). */
  resolveSecret(ref: string): Promise<Secret> {
    return resolveSecretRef(ref, this.env);
  }

  /** The resolved config of one source (throws LK_UNKNOWN_SOURCE). */
  source(name: string): ResolvedSource {
    return getSource(this.config, name);
  }

  async #oauthSettings(source: string): Promise<OAuthClientSettings> {
    let p = this.#settingsCache.get(source);
    if (!p) {
      p = this.#loadOAuthSettings(source);
      this.#settingsCache.set(source, p);
      p.catch(() => this.#settingsCache.delete(source));
    }
    return p;
  }

  async #loadOAuthSettings(source: string): Promise<OAuthClientSettings> {
    const src = this.config.sources.get(source);
    const o = src?.oauth;
    if (!o) return {};
    const settings: OAuthClientSettings = {
      tokenEndpoint: o.tokenEndpoint,
      issuer: o.issuer,
      clientId: o.clientId,
      clientAuth: o.clientAuth,
      skewMs: configuredSkewMs(o),
    };
    const ref = o.clientSecret;
    // Resolved when a refresh needs it, not to hand out a fresh token.
    if (ref) settings.resolveClientSecret = () => this.#clientSecret(source, ref);
    return settings;
  }

  /** The client secret of an OAuth source (resolved once; a failure is retried next time). */
  #clientSecret(source: string, ref: string): Promise<Secret> {
    let p = this.#clientSecrets.get(source);
    if (!p) {
      p = resolveSecretRef(ref, this.env).catch((err: unknown) => {
        if (err instanceof LatchkeyError) throw new LatchkeyError(err.code, `${source}: client secret ${err.message}`, { source, operatorAction: 'fix_config' });
        throw err;
      });
      this.#clientSecrets.set(source, p);
      p.catch(() => this.#clientSecrets.delete(source));
    }
    return p;
  }

  /**
   * Installs a grant obtained elsewhere (an import, or a login's token response), under the
   * source's lock so it never races a refresh. Validates it first: nothing is written unless
   * it has an access token.
   */
  async installGrant(source: string, input: GrantInput, extra: GrantOrigin = {}): Promise<StoredGrant> {
    const src = getSource(this.config, source);
    const { accessTokenTimes } = await import('./oauth/jwt-claims.js');
    const grant = grantFromInput(input, this.clock.now(), source, accessTokenTimes, extra.warnings);
    grant.tokenEndpoint = extra.tokenEndpoint ?? src.oauth?.tokenEndpoint;
    grant.issuer = extra.issuer ?? src.oauth?.issuer;
    grant.clientId = extra.clientId ?? src.oauth?.clientId;
    await this.store.withLock(source, async (tx) => {
      const rec = await tx.read(source);
      await tx.write(source, { ...(rec ? withoutVersion(rec) : {}), grant, lastFailure: undefined }, rec?.version ?? 0);
    });
    this.engine.invalidate(source);
    return grant;
  }

  /** Removes the stored grant of a source (under its lock). */
  async removeGrant(source: string): Promise<boolean> {
    let removed = false;
    await this.store.withLock(source, async (tx) => {
      const rec = await tx.read(source);
      if (!rec?.grant) return;
      const { grant: _g, ...rest } = withoutVersion(rec);
      await tx.write(source, rest, rec.version);
      removed = true;
    });
    this.engine.invalidate(source);
    return removed;
  }

  /** One line of truth per source: what it uses, when it expires, what to do if broken. */
  async status(): Promise<SourceStatus[]> {
    // Metadata only: `status` decides from times and flags, never from a secret (issue 9).
    const records = await this.store.listMeta();
    const out: SourceStatus[] = [];
    for (const [name, src] of this.config.sources) {
      out.push(await this.#statusOf(name, src, records.get(name)));
    }
    return out;
  }

  async #statusOf(name: string, src: ResolvedSource, rec: SourceMeta | undefined): Promise<SourceStatus> {
    // The same choice lk.fetch makes (first available method), so status and fetch agree.
    const authPath = (await this.authPath(name).catch(() => null)) ?? this.#bearer.get(name) ?? src.methods[0] ?? null;
    const base: SourceStatus = {
      source: name,
      methods: src.methods,
      authPath,
      state: 'ok',
      expiresAt: null,
      lastRefreshAt: rec?.lastRefreshAt ? new Date(rec.lastRefreshAt).toISOString() : null,
      refreshCount: rec?.refreshCount ?? 0,
      message: '',
      operatorAction: null,
      fix: null,
    };
    const act = (state: SourceState, action: OperatorAction | null, message: string): SourceStatus => ({
      ...base,
      state,
      operatorAction: action,
      fix: action ? fixForSource(name, src, action, this.config.file) : null,
      message,
    });
    const now = this.clock.now();
    if (authPath === 'oauth') {
      const g = rec?.hasGrant && rec.obtainedAt !== undefined ? { ...rec, obtainedAt: rec.obtainedAt } : undefined;
      if (!g) return act('no_grant', 'relogin', 'no grant stored');
      base.expiresAt = g.expiresAt !== undefined ? new Date(g.expiresAt).toISOString() : null;
      if (g.revoked) return act('revoked', 'reauthorize', `grant revoked (${g.revoked.reason})`);
      if (src.oauth?.clientSecret) {
        // Not needed to hand out a fresh token, but the next refresh needs it: say so now.
        const problem = await this.#clientSecret(name, src.oauth.clientSecret).then(
          () => undefined,
          (err: unknown) => (err instanceof Error ? err.message : String(err)),
        );
        if (problem) return act('error', 'fix_config', `${problem} (needed for the next refresh)`);
      }
      const held = this.engine.unsaved(name);
      if (held) {
        base.expiresAt = held.expiresAt !== undefined ? new Date(held.expiresAt).toISOString() : null;
        return act('failing', null, held.message);
      }
      const skew = configuredSkewMs(src.oauth);
      const failing = rec?.lastFailure && rec.lastFailure.at > (rec.lastRefreshAt ?? 0) ? rec.lastFailure : undefined;
      if (failing) return act('failing', failing.kind === 'rejected' ? 'fix_config' : null, `last refresh failed: ${sanitizeRemoteText(failing.message, 500)}`);
      if (g.expiresAt === undefined) return act('ok', null, 'unknown expiry (refreshed on 401 and by the keeper)');
      if (now >= g.expiresAt) return act('expired', g.hasRefreshToken ? null : 'relogin', g.hasRefreshToken ? 'access token expired; refreshed on next use' : 'expired and no refresh token');
      if (now >= refreshDueAt(g, skew)) return act('expiring', null, 'due for refresh');
      return act('ok', null, g.hasRefreshToken ? 'refreshable' : 'no refresh token');
    }
    if (authPath === 'token' && src.token) {
      try {
        await resolveSecretRef(src.token.secret, this.env);
      } catch (err) {
        const r = act('error', 'replace_token', (err as Error).message);
        return { ...r, fix: (err instanceof LatchkeyError && err.fix) || r.fix };
      }
      if (src.token.expiresAt) {
        const exp = Date.parse(src.token.expiresAt);
        base.expiresAt = new Date(exp).toISOString();
        if (now >= exp) return act('expired', 'replace_token', 'the token has expired');
        if (exp - now < 7 * 86_400_000) return act('expiring', 'replace_token', 'the token expires within 7 days');
      }
      return act('ok', null, 'static token');
    }
    return act('ok', null, 'browser session (checked by preflight)');
  }

  /**
   * What `console.log(lk)` / `util.inspect` and JSON.stringify show: the profile and its sources,
   * never `env` (the process environment, with whatever secrets `env:` references point at).
   */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Latchkey { home: ${JSON.stringify(this.paths.home)}, store: ${JSON.stringify(this.store.location)}, sources: ${JSON.stringify([...this.config.sources.keys()])} }`;
  }

  toJSON(): { home: string; store: string; sources: string[] } {
    return { home: this.paths.home, store: this.store.location, sources: [...this.config.sources.keys()] };
  }

  /** Tries a last time to save any refreshed grant the store could not take, then closes the store. */
  async close(): Promise<void> {
    await this.engine.flush();
    await this.store.close();
  }
}

function withoutVersion(rec: SourceRecord): Omit<SourceRecord, 'version'> {
  const { version: _v, ...rest } = rec;
  return rest;
}

/**
 * `expires_at` of a grant file: seconds since the epoch (as requests-oauthlib and Authlib store
 * it), milliseconds when the number is too large to be seconds (beyond the year 5138), or an
 * ISO 8601 date.
 */
function expiresAtField(v: unknown, source: string): number {
  let ms = Number.NaN;
  if (typeof v === 'number' && Number.isFinite(v)) ms = v < 1e11 ? v * 1000 : v;
  else if (typeof v === 'string' && v.trim() !== '') ms = /^\d+(\.\d+)?$/.test(v.trim()) ? expiresAtField(Number(v), source) : Date.parse(v);
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "expires_at" must be a time (seconds since the epoch or an ISO 8601 date)`, { source });
  }
  return clampTime(ms);
}

/**
 * Validates a token response / grant file; messages name the field, never the value.
 * `readJwt` reads `exp`/`iat` from an access token that is a JWT (src/oauth/jwt-claims.ts,
 * loaded only when a grant is installed); `warnings` collects what was bounded.
 */
export function grantFromInput(input: unknown, now: number, source: string, readJwt?: (accessToken: string) => { exp?: number; iat?: number }, warnings?: string[]): StoredGrant {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": expected a JSON object`, { source });
  }
  const g = input as Record<string, unknown>;
  if (typeof g.access_token !== 'string' || g.access_token === '') {
    throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "access_token" is missing or not a string`, { source });
  }
  if (g.refresh_token !== undefined && typeof g.refresh_token !== 'string') {
    throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "refresh_token" must be a string`, { source });
  }
  for (const k of ['access_token', 'refresh_token'] as const) {
    // A token is printed one per line and sent in a header: a newline or other control character
    // (a hand-made grant file) would break both.
    const v = g[k];
    if (typeof v === 'string' && [...v].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f)) {
      throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "${k}" contains whitespace or a control character`, { source });
    }
  }
  let expiresIn: number | undefined;
  if (g.expires_in !== undefined) {
    const n = typeof g.expires_in === 'string' ? Number(g.expires_in) : g.expires_in;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) {
      throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "expires_in" must be a positive number of seconds`, { source });
    }
    // Beyond a year: clamped (src/lifetime.ts), said on stderr by `import`.
    const reading = readExpiresIn(n);
    if (reading.warning) warnings?.push(`grant for "${source}": ${reading.warning}`);
    expiresIn = reading.seconds;
  }
  // `iat` (seconds, as in a JWT) is when the grant was issued: its expires_in counts from then,
  // not from the import (which may come hours later). Never later than now.
  let obtainedAt = now;
  if (g.iat !== undefined) {
    if (typeof g.iat !== 'number' || !Number.isFinite(g.iat) || g.iat <= 0) {
      throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "iat" must be a time in seconds since the epoch`, { source });
    }
    obtainedAt = Math.min(clampTime(g.iat * 1000), now);
  }
  const expiresAtGiven = g.expires_at === undefined ? undefined : expiresAtField(g.expires_at, source);
  for (const k of ['scope', 'token_type'] as const) {
    if (g[k] !== undefined && typeof g[k] !== 'string') throw new LatchkeyError('LK_GRANT_INVALID', `grant for "${source}": "${k}" must be a string`, { source });
  }
  const grant: StoredGrant = { accessToken: new Secret(g.access_token), obtainedAt };
  if (typeof g.refresh_token === 'string' && g.refresh_token !== '') grant.refreshToken = new Secret(g.refresh_token);
  // The earliest of expires_in, expires_at and the access token's own `exp` (when it is a JWT).
  let expiresAt = expiresAtOf(obtainedAt, expiresIn, readJwt?.(g.access_token));
  if (expiresAtGiven !== undefined) expiresAt = clampExpiresAt(obtainedAt, Math.min(expiresAt ?? Number.POSITIVE_INFINITY, expiresAtGiven));
  if (expiresAt !== undefined) {
    grant.expiresAt = expiresAt;
    if (expiresAt <= now) warnings?.push(`grant for "${source}": the access token has already expired; it is refreshed on first use`);
  }
  if (typeof g.scope === 'string') grant.scope = g.scope;
  if (typeof g.token_type === 'string') grant.tokenType = g.token_type;
  return grant;
}

/** Opens Latchkey on a profile (default `LATCHKEY_HOME`). */
export async function openLatchkey(options: OpenLatchkeyOptions = {}): Promise<Latchkey> {
  const env = options.env ?? process.env;
  const home = options.home ?? latchkeyHome(env);
  const paths = homePaths(home);
  const config = options.config ?? (await loadConfig(paths.config));
  // LATCHKEY_STORE / the config's `store` section, else the file store under `home`.
  const store = options.store ?? (storeConfigured(env, config.raw.store) ? await openStore({ env, config: config.raw.store, paths }) : undefined);
  return new Latchkey(config, { ...options, env, paths, ...(store ? { store } : {}) });
}
