import { createRequire } from 'node:module';
import { command } from './commands/token.js';
import { reportError, type CliIO } from './io.js';

/**
 * `latchkey token <source>`, without the dispatcher: what `main(['token', source])` does,
 * for the command that scripts run once per job. bin.ts routes here only for exactly one
 * non-flag argument; `token --help` and usage errors go through main.ts.
 */
export async function runToken(source: string): Promise<number> {
  const io: CliIO = {
    // process.stdout on a pipe builds a net.Socket and the whole streams stack (~3 ms): the
    // one line this command prints goes straight to fd 1 instead.
    stdout: { write: (text: string) => writeStdout(text) } as unknown as NodeJS.WritableStream,
    // Created on first access only (a stream each): stderr is used only on an error.
    get stderr() {
      return process.stderr;
    },
    get stdin() {
      return process.stdin;
    },
    env: process.env,
  };
  try {
    return await command.run([source], io);
  } catch (err) {
    return reportError(err, io);
  }
}

// require(), not `import … from 'node:fs'`: the ESM namespace of node:fs reads every export,
// and its lazy ReadStream/WriteStream getters load the streams stack (~2 ms).
const { writeSync } = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

/** Writes all of `text` to fd 1; if the fd is non-blocking and full (EAGAIN), the rest goes through process.stdout. */
function writeStdout(text: string): boolean {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(1, buf, off, buf.length - off);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    return process.stdout.write(buf.subarray(off));
  }
}
