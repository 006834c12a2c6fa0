import { SECRET_REF } from '../config/constants.js';
import { loadConfig } from '../config/load.js';
import type { KeeperConfig } from '../config/schema.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { LatchkeyError } from '../core/errors.js';
import type { OpenLatchkeyOptions } from '../latchkey.js';
import { isLoopbackHost } from '../oauth/endpoint.js';
import { homePaths, latchkeyHome } from '../paths.js';
import { Secret } from '../core/secret.js';
import type { AlertSettings } from './alerts.js';
import { checkBind, isTransientListenError, startKeeperHttp, type KeeperHttpServer } from './http.js';
import { Keeper, type CycleSummary, type KeeperOptions } from './keeper.js';
import type { KeeperLog } from './log.js';
import type { ProbeFn } from './probe-stage.js';
import { acquireKeeperLock, describeHolder, type KeeperLock } from './single-instance.js';
import { FleetView } from './fleet-view.js';
import { openStore, storeConfigured } from '../store/open-store.js';
import type { LeaderLockOptions, Store } from '../store/store.js';

/**
 * `latchkey keeper` as a process: settings from flags over the config's `keeper` section over
 * defaults, then — in an order that loses nothing when a step fails — the single-instance lock,
 * the keeper, the HTTP server, the loop. Stopping runs it backwards.
 */

export const DEFAULT_PORT = 7878;
export const DEFAULT_HOST = '127.0.0.1';
/** How often a keeper whose port is taken (or whose address is not up yet) tries to bind again. */
export const HTTP_RETRY_MS = 30_000;

/** Options of `startKeeper`: the profile, the keeper's schedule, the HTTP bind (host, port, remote access token), standby and one-shot modes. */
export interface KeeperDaemonOptions {
  env?: NodeJS.ProcessEnv;
  /** LATCHKEY_HOME (default from `env`). */
  home?: string;
  intervalSeconds?: number;
  port?: number;
  host?: string;
  allowRemote?: boolean;
  /** Secret reference of the bearer token (`env:NAME`, `file:/path`, `keyring:service/account`). */
  tokenRef?: string;
  concurrency?: number;
  probeTimeoutMs?: number;
  /** One cycle, no HTTP server, then stop. */
  once?: boolean;
  /** Wait for another keeper to stop instead of refusing. */
  standby?: boolean;
  /** Aborting it stops a keeper that is standing by for the lock. */
  signal?: AbortSignal;
  log: KeeperLog;
  /** Test hooks: extra options for opening Latchkey (fetch, clock) and the keeper. */
  open?: Omit<OpenLatchkeyOptions, 'home' | 'env' | 'config'>;
  probe?: ProbeFn;
  keeper?: Pick<KeeperOptions, 'random' | 'fetch'> & { alertRetryBaseMs?: number; alertTimeoutMs?: number };
  /** Test hook: retry period of the HTTP bind (default {@link HTTP_RETRY_MS}). */
  httpRetryMs?: number;
}

/** A running keeper with its HTTP server (what `latchkey keeper` runs). */
export interface KeeperDaemon {
  readonly keeper: Keeper;
  /** The HTTP server; undefined with `once`, and while the port is taken (the bind is retried). */
  readonly http: KeeperHttpServer | undefined;
  /** Resolves with the exit code once the daemon stopped (by `stop()` or because it lost its lock). */
  readonly done: Promise<number>;
  /** The summary of the single cycle (`once`). */
  readonly once: CycleSummary | undefined;
  stop(code?: number): Promise<number>;
  /**
   * Reads the config again (SIGHUP): sources and their settings take effect at once; a config
   * that does not load leaves the keeper on the last good one and says why. The `keeper` section
   * (port, host, interval, alerts) is read at start only. Resolves true when the new config is in use.
   */
  reload(): Promise<boolean>;
}

/** Resolves `--token`: a reference, never the token itself. */
export async function resolveTokenRef(ref: string, env: NodeJS.ProcessEnv): Promise<Secret> {
  if (!SECRET_REF.test(ref)) {
    throw new LatchkeyError('LK_USAGE', '--token takes a secret reference (env:NAME, file:/path or keyring:service/account), not the token itself');
  }
  return resolveSecretRef(ref, env);
}

/** The alert channels of the config's `keeper.alerts`, with their secrets resolved. */
export async function resolveAlertSettings(cfg: KeeperConfig['alerts'], env: NodeJS.ProcessEnv): Promise<AlertSettings> {
  const out: AlertSettings = {};
  if (cfg?.webhook) {
    out.webhook = { url: cfg.webhook.url };
    if (cfg.webhook.secret) out.webhook.secret = await resolveSecretRef(cfg.webhook.secret, env);
  }
  const push = cfg?.uptimeKuma?.pushUrl;
  if (push) out.uptimeKumaPushUrl = SECRET_REF.test(push) ? await resolveSecretRef(push, env) : new Secret(push);
  return out;
}

function positive(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isFinite(v) || v <= 0) throw new LatchkeyError('LK_USAGE', `${name} must be a positive number`);
  return v;
}

export async function startKeeperDaemon(o: KeeperDaemonOptions): Promise<KeeperDaemon> {
  const env = o.env ?? process.env;
  const home = o.home ?? latchkeyHome(env);
  const paths = homePaths(home);
  const config = await loadConfig(paths.config);
  const kc: KeeperConfig = config.raw.keeper ?? {};
  const host = o.host ?? kc.host ?? DEFAULT_HOST;
  const port = o.port ?? kc.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LatchkeyError('LK_USAGE', `--port must be 0–65535, got ${port}`);
  const token = o.tokenRef ? await resolveTokenRef(o.tokenRef, env) : undefined;
  if (!o.once) checkBind({ host, port, allowRemote: o.allowRemote, token });
  const alerts = await resolveAlertSettings(kc.alerts, env);
  if (o.keeper?.alertRetryBaseMs !== undefined) alerts.retryBaseMs = o.keeper.alertRetryBaseMs;
  if (o.keeper?.alertTimeoutMs !== undefined) alerts.timeoutMs = o.keeper.alertTimeoutMs;
  const log = o.log;
  if (alerts.webhook && /^http:/i.test(alerts.webhook.url) && !isLoopbackHost(new URL(alerts.webhook.url).hostname)) {
    log('warn', 'webhook_insecure', { message: 'keeper.alerts.webhook.url is plain http to another host: alert contents (source names, fixes) travel unencrypted; use https' });
  }

  let lostLock = false;
  let onLost: () => void = () => undefined;
  // Fleet mode: on a shared store (LATCHKEY_STORE, or the config's store.url) one keeper leads
  // the store, whatever machine or home it runs from: the store's leader lock (PostgreSQL: an
  // advisory lock on a dedicated connection), not the home's lock file.
  const shared: Store | undefined = storeConfigured(env, config.raw.store) ? await openStore({ env, config: config.raw.store, paths }) : undefined;
  const lockName = shared ? `the keeper lock of ${shared.location}` : paths.keeperLock;
  const lockOptions: LeaderLockOptions = {
    standby: o.standby,
    signal: o.signal,
    onStandby: (holder) =>
      log('warn', 'standby', {
        message: `another keeper (${describeHolder(holder)}) is running for ${shared ? shared.location : home}; standing by until it stops`,
        lock: lockName,
      }),
    onLost: (holder) => {
      lostLock = true;
      log('error', 'lock_lost', {
        message: `${lockName} was taken over by ${describeHolder(holder)} (this keeper was unresponsive for too long, or its connection dropped); stopping so that only one keeper probes`,
      });
      onLost();
    },
    onHeartbeatError: (err) => log('warn', 'lock_heartbeat_failed', { message: (err as Error).message }),
  };
  // Fleet mode with --standby on a store that shares the keeper state (PostgreSQL): the HTTP
  // server starts at once and serves what the leader published, while the lock is waited for.
  const board = shared?.sharedKeeperState?.();
  const servesStandby = board !== undefined && o.standby === true && !o.once;
  const standingBy = new AbortController();
  const abortStandby = (): void => standingBy.abort();
  o.signal?.addEventListener('abort', abortStandby, { once: true });
  let lock: KeeperLock | undefined;
  let leading: Promise<KeeperLock> | undefined;
  try {
    if (servesStandby) {
      // Leads at once when nobody does; stands by (serving) only when another keeper leads.
      lock = await shared!.leaderLock({ ...lockOptions, standby: false }).catch((err: unknown) => {
        if (!(err instanceof LatchkeyError && err.fix === 'latchkey keeper --standby')) throw err;
        leading = shared!.leaderLock({ ...lockOptions, signal: standingBy.signal });
        return undefined;
      });
    }
    else lock = shared ? await shared.leaderLock(lockOptions) : await acquireKeeperLock(paths.keeperLock, lockOptions);
  } catch (err) {
    await shared?.close().catch(() => undefined);
    throw err;
  }
  if (lock && shared) log('info', 'leading', { message: `this keeper leads ${shared.location}`, lock: lock.path });
  // A publish refused for a newer epoch: another keeper leads now; stop as when the lock is lost.
  const fleet = board ? new FleetView(board, shared!.location, () => lock?.epoch, () => lockOptions.onLost?.(undefined)) : undefined;

  // The leader's refresh-ahead asks the store what is due (PostgreSQL: an indexed pick).
  const dueWork = shared?.dueWork?.();
  let keeper: Keeper;
  try {
    keeper = await Keeper.open({
      open: { ...o.open, home, env, config, ...(shared ? { store: shared } : {}) },
      intervalSeconds: positive('--interval', o.intervalSeconds),
      concurrency: positive('concurrency', o.concurrency),
      probeTimeoutMs: positive('probe timeout', o.probeTimeoutMs),
      alerts,
      log,
      probe: o.probe,
      random: o.keeper?.random,
      fetch: o.keeper?.fetch,
      ...(fleet ? { publish: (report) => fleet.publish(report), fleet: () => fleet.leaderInfo() } : {}),
      ...(dueWork ? { dueWork } : {}),
    });
  } catch (err) {
    await dueWork?.close().catch(() => undefined);
    standingBy.abort();
    await leading?.then((l) => l.release()).catch(() => undefined);
    await lock?.release();
    await shared?.close().catch(() => undefined);
    throw err;
  }
  const standbyView = leading ? fleet!.standbyBackend(keeper, Math.min(keeper.settings.intervalSeconds * 1000, 5_000), (err) => log('warn', 'shared_state_unreadable', { message: (err as Error).message })) : undefined;

  // The HTTP server is the keeper's window, not its job: when the port is taken (another
  // program, a second profile's keeper) the keeper keeps every credential alive, writes
  // health.json and alerts, says so, and tries the port again until it is free. A service that
  // exited instead would be restarted in a loop by its manager and keep nothing alive meanwhile.
  let http: KeeperHttpServer | undefined;
  let httpRetry: NodeJS.Timeout | undefined;
  let binding: Promise<void> | undefined;
  let closed = false;
  const listen = (): Promise<KeeperHttpServer> => startKeeperHttp(standbyView ?? keeper, { host, port, allowRemote: o.allowRemote, token });
  const retryMs = o.httpRetryMs ?? HTTP_RETRY_MS;
  const retryBind = (): void => {
    httpRetry = setTimeout(() => {
      httpRetry = undefined;
      binding = listen().then(
        async (server) => {
          if (closed) return server.close();
          http = server;
          log('info', 'http_listening', { url: server.url, message: `the port is free again; dashboard at ${server.url}/` });
        },
        (err: unknown) => {
          if (closed) return;
          if (isTransientListenError(err)) return retryBind();
          log('error', 'http_unavailable', { message: `${(err as Error).message}; no more attempts (the keeper goes on without its HTTP server)` });
        },
      );
    }, retryMs);
    httpRetry.unref();
  };
  // A standby's dashboard shows the leader's state from its first request.
  await standbyView?.poll();
  if (!o.once) {
    try {
      http = await listen();
    } catch (err) {
      if (!isTransientListenError(err)) {
        standbyView?.close();
        standingBy.abort();
        await leading?.then((l) => l.release()).catch(() => undefined);
        await keeper.stop(0);
        await lock?.release();
        throw err;
      }
      log('error', 'http_unavailable', {
        message:
          `${(err as Error).message} The keeper runs on without its dashboard, /metrics and /readyz — refresh-ahead, probes, ` +
          `health.json and alerts go on — and tries the port again every ${Math.round(retryMs / 1000)} s.`,
      });
      retryBind();
    }
  }

  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<number> | undefined;
  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      log('info', 'stopping', { message: 'finishing the work in progress, saving state, releasing the lock' });
      closed = true;
      o.signal?.removeEventListener('abort', abortStandby);
      standbyView?.close();
      standingBy.abort();
      if (httpRetry) clearTimeout(httpRetry);
      await binding;
      await Promise.all([keeper.stop(), http?.close()]);
      await dueWork?.close().catch(() => undefined);
      await leading?.then((l) => l.release()).catch(() => undefined);
      await lock?.release();
      await shared?.close().catch(() => undefined);
      const exit = lostLock ? 1 : code;
      log('info', 'stopped', { exitCode: exit });
      resolveDone(exit);
      return exit;
    })();
    return stopping;
  };
  onLost = () => void stop(1);

  const s = keeper.settings;
  log('info', 'started', {
    pid: process.pid,
    home,
    sources: keeper.lk.config.sources.size,
    intervalSeconds: s.intervalSeconds,
    concurrency: s.concurrency,
    perHostConcurrency: s.perHostConcurrency,
    probeTimeoutMs: s.probeTimeoutMs,
    url: http?.url,
    remote: http?.remote ?? false,
    alerts: [alerts.webhook ? 'webhook' : '', alerts.uptimeKumaPushUrl ? 'uptime_kuma' : '', 'log'].filter(Boolean),
    message: o.once ? 'keeper running one cycle' : http ? `keeper running; dashboard at ${http.url}/` : 'keeper running; no dashboard until the port is free',
  });

  if (o.once) {
    let once: CycleSummary | undefined;
    try {
      once = await keeper.runCycle();
    } finally {
      await stop(once?.exitCode ?? 1);
    }
    const code = once.exitCode;
    return { keeper, http, done: Promise.resolve(code), once, stop: async () => code, reload: async () => false };
  }
  if (leading) {
    log('info', 'standby_serving', { message: `standing by for ${shared!.location}; serving the leader's published state${http ? ` at ${http.url}/` : ''}` });
    // Takes over when the lock comes free (the leader stopped or died): the poll stops, the
    // keeper starts, and the same HTTP server serves this keeper's own report from then on.
    leading.then(
      (l) => {
        if (closed) return void l.release();
        lock = l;
        standbyView?.lead();
        log('info', 'leading', { message: `this keeper leads ${shared!.location}`, lock: l.path });
        keeper.start();
      },
      (err: unknown) => {
        if (closed) return;
        log('error', 'standby_failed', { message: (err as Error)?.message ?? String(err) });
        void stop(1);
      },
    );
  } else keeper.start();
  return {
    keeper,
    get http() {
      return http;
    },
    done,
    once: undefined,
    stop,
    reload: () => keeper.reloadConfig(),
  };
}
