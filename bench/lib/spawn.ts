/** Spawning measured processes and worker processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';

export interface TimedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn() to the 'close' event, in ms. */
  ms: number;
}

/**
 * Runs a command to completion and measures its wall time: from just before spawn() to the
 * child's exit (stdout/stderr drained). Same harness overhead for every command compared.
 */
export function runTimed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Number(process.hrtime.bigint() - start) / 1e6 });
    });
  });
}

export interface WorkerResult<T> {
  /** The last JSON line the worker printed on stdout (its result), if any. */
  result: T | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the harness had to kill it at the hard deadline. */
  killed: boolean;
  stderr: string;
}

export interface SpawnedWorker<T> {
  child: ChildProcess;
  done: Promise<WorkerResult<T>>;
}

/**
 * Starts `node <script> …args` whose result is the last JSON line on stdout. The worker is
 * SIGKILLed at `killAt` (epoch ms) if it is still running, so a run is always bounded.
 * `nice` lowers its scheduling priority (see CLIENT_NICE).
 */
export function spawnWorker<T>(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv; killAt: number; nice?: number }): SpawnedWorker<T> {
  const child = spawn(process.execPath, [script, ...args], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (opts.nice !== undefined && child.pid !== undefined) setPriority(child.pid, opts.nice);
  let stdout = '';
  let stderr = '';
  let killed = false;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-16_384);
  });
  const timer = setTimeout(
    () => {
      killed = true;
      child.kill('SIGKILL');
    },
    Math.max(0, opts.killAt - Date.now()),
  );
  const done = new Promise<WorkerResult<T>>((resolve) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ result: undefined, code: null, signal: null, killed, stderr: `${stderr}\nspawn failed: ${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.split('\n').filter((l) => l.trim().startsWith('{'));
      let result: T | undefined;
      const last = lines[lines.length - 1];
      if (last !== undefined) {
        try {
          result = JSON.parse(last) as T;
        } catch {
          result = undefined;
        }
      }
      resolve({ result, code, signal, killed, stderr });
    });
  });
  return { child, done };
}

/**
 * The niceness of the client processes of a load bench (both subjects alike). The IdP, the
 * protected API, PostgreSQL and Redis stand in for other machines; on 2 cores, 16 client
 * processes in closed loops would otherwise take CPU from them in equal shares, and a protected
 * call would sit seconds in the starved IdP's queue (measured: 6.4 s for a lone curl), so the
 * figures would measure the scheduler, not the client.
 */
export const CLIENT_NICE = 10;
