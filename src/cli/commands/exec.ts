import { spawn } from 'node:child_process';
import { openLatchkey } from '../../latchkey.js';
import { usageError, warnUnsaved, type Command } from '../io.js';

/** `LATCHKEY_<SOURCE>_TOKEN`: upper-cased, non-alphanumerics as `_`. */
export function tokenEnvName(source: string): string {
  return `LATCHKEY_${source.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_TOKEN`;
}

export const command: Command = {
  summary: 'run a command with LATCHKEY_<SOURCE>_TOKEN set',
  usage: 'latchkey exec <source>[,<source>...] -- <command> [args...]',
  async run(args, io) {
    const dd = args.indexOf('--');
    const own = dd === -1 ? args : args.slice(0, dd);
    const cmd = dd === -1 ? [] : args.slice(dd + 1);
    if (own.length !== 1 || cmd.length === 0) throw usageError(`usage: ${this.usage}`);
    const sources = own[0]!.split(',').map((s) => s.trim()).filter(Boolean);
    if (sources.length === 0) throw usageError(`usage: ${this.usage}`);
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
      const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
      const onInt = forward('SIGINT');
      const onTerm = forward('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      child.on('error', (err) => {
        io.stderr.write(`latchkey: cannot run ${cmd[0]}: ${(err as NodeJS.ErrnoException).code ?? err.message}\n`);
        resolve(127);
      });
      child.on('exit', (code, signal) => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1));
      });
    });
  },
};

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig];
}
