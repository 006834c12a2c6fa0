import { LatchkeyError, ExitCode } from '../core/errors.js';
import type { Latchkey } from '../latchkey.js';
import { sanitizeMessage } from '../core/sanitize.js';

/** What a command may touch: injected so tests can run commands in-process. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  summary: string;
  usage: string;
  run(args: string[], io: CliIO): Promise<number>;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** Prints an error the way every command does: one line, the fix, the exit code. */
export function reportError(err: unknown, io: CliIO): number {
  if (err instanceof LatchkeyError) {
    io.stderr.write(`latchkey: ${err.message}\n`);
    if (err.fix) io.stderr.write(`  fix: ${err.fix}\n`);
    return err.exitCode;
  }
  const e = err as Error & { code?: string };
  if (e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    io.stderr.write(`latchkey: ${sanitizeMessage(e.message)}\n`);
    return ExitCode.usage;
  }
  // Not one of ours: its message (or stack) may quote anything, upstream text included.
  io.stderr.write(`latchkey: unexpected error: ${sanitizeMessage(e?.message ?? String(err))}\n`);
  if (io.env.LATCHKEY_DEBUG && e?.stack) io.stderr.write(`${sanitizeMessage(e.stack)}\n`);
  return ExitCode.usage;
}

export function usageError(message: string): LatchkeyError {
  return new LatchkeyError('LK_USAGE', message);
}

/** A whole-number flag within [min, max]; undefined when absent; a usage error naming the flag otherwise. */
export function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < min || n > max) throw usageError(`${name} expects a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

export function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/**
 * After `lk.close()`: says on stderr which sources were refreshed but could not be saved (the
 * store could not be written). The token printed is valid; the rotated refresh token lived only
 * in this process, which is about to exit.
 */
export function warnUnsaved(lk: Latchkey, sources: readonly string[], io: CliIO): void {
  for (const source of sources) {
    const held = lk.engine.unsaved(source);
    if (!held) continue;
    io.stderr.write(
      `latchkey: warning: ${source}: refreshed at the IdP, but the new grant could not be saved to ${lk.store.location} (${held.reason}).\n` +
        `  Its access token is valid; the new refresh token is lost when this command exits. Free the space (or fix the store); if the next refresh then fails with invalid_grant: latchkey login ${source}\n`,
    );
  }
}
