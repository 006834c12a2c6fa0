/** A `latchkey keeper` child process whose JSON log lines (stderr) a test can wait on. */
import { spawn, type ChildProcess } from 'node:child_process';
import { openLatchkey } from '../../src/latchkey.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { freshPgSchema, TEST_MASTER_KEY_TEXT } from '../fixtures/pg.js';
import { cliPath, makeHome, type TempHome } from '../helpers/home.js';

type PgSchema = Awaited<ReturnType<typeof freshPgSchema>>;

export type LogEvent = Record<string, unknown> & { event: string };

export class KeeperProcess {
  readonly child: ChildProcess;
  readonly events: LogEvent[] = [];
  stderr = '';
  stdout = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<() => void> = [];

  private constructor(child: ChildProcess) {
    this.child = child;
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          this.events.push(JSON.parse(line) as LogEvent);
        } catch {
          // not a log line
        }
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        for (const w of this.#waiters.splice(0)) w();
        resolve({ code, signal });
      });
    });
  }

  static start(args: string[], env: NodeJS.ProcessEnv): KeeperProcess {
    const child = spawn(process.execPath, [cliPath, 'keeper', ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new KeeperProcess(child);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log event (from `from` on) matching `pred`; rejects after `timeoutMs`. */
  async waitFor(pred: (e: LogEvent) => boolean, timeoutMs = 15_000, from = 0): Promise<LogEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find(pred);
      if (hit) return hit;
      if (!this.running && this.child.exitCode !== null) throw new Error(`keeper exited (${this.child.exitCode}) before the event; stderr:\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a keeper event; stderr:\n${this.stderr.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  /** SIGKILL if still running (test clean-up). */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

/**
 * The fleet keepers' stage: a fresh PostgreSQL schema, the real IdP (60 s tokens), two homes
 * ("machines") with one oauth source `idp` probed at the IdP, its grant installed through the
 * first, and the environment that points a process at the shared store. Cleaned up after `t`.
 */
export async function fleetKeeperStage(t: { after(fn: () => unknown): void }): Promise<{ db: PgSchema; idp: Idp; a: TempHome; b: TempHome; storeEnv: Record<string, string> }> {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl: 60 });
  t.after(() => idp.close());
  const config = { version: 1, sources: { idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }, probe: { url: idp.protectedUrl } } } };
  const a = await makeHome(config);
  const b = await makeHome(config);
  t.after(() => a.cleanup());
  t.after(() => b.cleanup());
  const storeEnv = { LATCHKEY_STORE: db.url, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  const lk = await openLatchkey({ home: a.home, env: storeEnv });
  await lk.installGrant('idp', await idp.mintGrant());
  await lk.close();
  return { db, idp, a, b, storeEnv };
}
