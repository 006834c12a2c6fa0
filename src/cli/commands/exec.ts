import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { openLatchkey } from '../../latchkey.js';
import { usageError, warnUnsaved, type Command } from '../io.js';

/** `LATCHKEY_<SOURCE>_TOKEN`: upper-cased, non-alphanumerics as `_`. */
export function tokenEnvName(source: string): string {
  return `LATCHKEY_${source.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_TOKEN`;
}

/**
 * Signals passed on to the command, so that a supervisor's SIGTERM or SIGHUP (reload) reaches
 * it and latchkey never dies leaving it orphaned. (A terminal's Ctrl-C reaches the command
 * directly too, as both are in the terminal's foreground process group.)
 */
const FORWARDED: readonly NodeJS.Signals[] =
  process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGHUP'] : ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export const command: Command = {
  summary: 'run a command with LATCHKEY_<SOURCE>_TOKEN set',
  usage: `latchkey exec <source>[,<source>...] -- <command> [args...]
  Exit status: the command's; 128+N when it is killed by signal N; 126 when it cannot be run, 127 when it is not found.
  SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to latchkey are passed on to the command.`,
  async run(args, io) {
    const dd = args.indexOf('--');
    const own = dd === -1 ? args : args.slice(0, dd);
    const cmd = dd === -1 ? [] : args.slice(dd + 1);
    if (own.length !== 1 || cmd.length === 0) throw usageError(`usage: ${this.usage}`);
    const sources = own[0]!.split(',').map((s) => s.trim()).filter(Boolean);
    if (sources.length === 0) throw usageError(`usage: ${this.usage}`);
    const names = new Map<string, string>();
    for (const s of sources) {
      const name = tokenEnvName(s);
      const other = names.get(name);
      if (other !== undefined && other !== s) throw usageError(`sources "${other}" and "${s}" would both be passed as ${name}; run them in separate commands`);
      names.set(name, s);
    }
    const lk = await openLatchkey({ env: io.env });
    const env: NodeJS.ProcessEnv = { ...io.env };
    try {
      for (const s of sources) env[tokenEnvName(s)] = await lk.token(s);
    } finally {
      await lk.close();
    }
    warnUnsaved(lk, sources, io);
    return new Promise<number>((resolve) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env });
      const handlers = FORWARDED.map((sig) => [sig, () => void child.kill(sig)] as const);
      for (const [sig, h] of handlers) process.on(sig, h);
      const done = (code: number): void => {
        for (const [sig, h] of handlers) process.off(sig, h);
        resolve(code);
      };
      child.on('error', (err: NodeJS.ErrnoException) => {
        io.stderr.write(`latchkey: cannot run ${cmd[0]}: ${err.code ?? err.message}\n`);
        // The shell's conventions: 127 not found, 126 found but not runnable.
        done(err.code === 'ENOENT' ? 127 : 126);
      });
      child.on('exit', (code, signal) => {
        done(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
      });
    });
  },
};
