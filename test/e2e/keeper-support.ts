/** A `latchkey keeper` child process whose JSON log lines (stderr) a test can wait on. */
import { spawn, type ChildProcess } from 'node:child_process';
import { cliPath } from '../helpers/home.js';

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
