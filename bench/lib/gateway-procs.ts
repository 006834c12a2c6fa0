/**
 * The processes of the gateway benchmarks, each in its own process so the measured server never
 * shares an event loop with the load generator or the upstream:
 *
 * - the upstream app (bench/gateway-upstream-server.ts);
 * - the Latchkey gateway, started the way users start it: `latchkey gateway --upstream …`;
 * - the peer: express-openid-connect + http-proxy-middleware (bench/gateway-peer-server.ts);
 * - the floor: a plain Node reverse proxy without authentication (bench/gateway-floor-proxy.ts).
 *
 * Every process is stopped by {@link stopAll} too (Ctrl-C on the bench, a failed phase).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_BIN } from './cli.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench/gateway-upstream-server.js */
export const UPSTREAM_SERVER = join(here, '..', 'gateway-upstream-server.js');
/** dist/bench/gateway-floor-proxy.js */
export const FLOOR_PROXY = join(here, '..', 'gateway-floor-proxy.js');
/** dist/bench/gateway-peer-server.js */
export const PEER_SERVER = join(here, '..', 'gateway-peer-server.js');

/** A server process started by this module. */
export interface ServerProcess {
  /** Its base URL (`http://127.0.0.1:PORT`, no trailing slash). */
  url: string;
  pid: number;
  child: ChildProcess;
  /** Its stderr so far (last 16 KiB). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it exited. */
  close(): Promise<void>;
}

const running = new Set<ServerProcess>();

/** Stops every process still running (for signal handlers and `finally`). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.close()));
}

/**
 * Spawns `node <args>` and waits (up to `timeoutMs`) for the line `readyUrl` recognises on
 * stdout; the process's url is what it returns.
 */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv, readyUrl: (line: string) => string | undefined, timeoutMs = 20_000): Promise<ServerProcess> {
  const childEnv = { ...env };
  delete childEnv.NODE_OPTIONS;
  const child = spawn(process.execPath, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-16_384);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not start within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        const u = readyUrl(line.trim());
        if (u) {
          clearTimeout(timer);
          resolve(u);
          return;
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited (${code ?? signal}) before it was ready; stderr: ${stderr.slice(-2000)}`));
    });
  });
  // keep draining stdout so the child never blocks on a full pipe
  child.stdout?.on('data', () => undefined);
  const proc: ServerProcess = {
    url: url.replace(/\/$/, ''),
    pid: child.pid ?? -1,
    child,
    stderr: () => stderr,
    close: async () => {
      running.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(proc);
  return proc;
}

function jsonField(field: string): (line: string) => string | undefined {
  return (line) => {
    if (!line.startsWith('{')) return undefined;
    try {
      const v = (JSON.parse(line) as Record<string, unknown>)[field];
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  };
}

/** The upstream app in its own process. */
export function startUpstreamProcess(): Promise<ServerProcess> {
  return spawnServer([UPSTREAM_SERVER], process.env, jsonField('origin'));
}

/** The floor: a plain Node keep-alive reverse proxy without authentication (bench/gateway-floor-proxy.ts). */
export function startFloorProxy(upstream: string): Promise<ServerProcess> {
  return spawnServer([FLOOR_PROXY, '--upstream', upstream], process.env, jsonField('url'));
}

/** Options of the two gateways under test. */
export interface GatewayUnderTest {
  upstream: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
}

/** The express-openid-connect peer; every peer process of one run gets the same `sessionSecret`. */
export function startPeerProcess(o: GatewayUnderTest & { sessionSecret: string }): Promise<ServerProcess> {
  return spawnServer(
    [PEER_SERVER, '--upstream', o.upstream, '--issuer', o.issuer, '--client-id', o.clientId],
    { ...process.env, NODE_ENV: 'production', LATCHKEY_PEER_CLIENT_SECRET: o.clientSecret, LATCHKEY_PEER_SESSION_SECRET: o.sessionSecret },
    jsonField('url'),
  );
}

/** The line `latchkey gateway` prints once it listens. */
export const GATEWAY_READY = /^latchkey gateway listening on (https?:\/\/\S+)$/;

/** `latchkey gateway --upstream … --issuer … --client-id … --client-secret env:… --port 0`, on `home`. */
export function startLatchkeyGateway(o: GatewayUnderTest & { home: string; extraArgs?: string[] }): Promise<ServerProcess> {
  return spawnServer(
    [CLI_BIN, 'gateway', '--upstream', o.upstream, '--issuer', o.issuer, '--client-id', o.clientId, '--client-secret', 'env:LATCHKEY_BENCH_GATEWAY_SECRET', '--host', '127.0.0.1', '--port', '0', ...(o.extraArgs ?? [])],
    { ...process.env, LATCHKEY_HOME: o.home, LATCHKEY_BENCH_GATEWAY_SECRET: o.clientSecret },
    (line) => GATEWAY_READY.exec(line)?.[1],
  );
}

/** GET `url` and parse JSON (for the peer's `/__peer/stats`). */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return (await res.json()) as T;
}
