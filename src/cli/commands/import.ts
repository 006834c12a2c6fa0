import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { openLatchkey } from '../../latchkey.js';
import { usageError, type CliIO, type Command } from '../io.js';

/** A token response is a few KB; anything much larger is not a grant (or is /dev/zero). */
const MAX_GRANT_BYTES = 1024 * 1024;

function tooLarge(from: string): LatchkeyError {
  return new LatchkeyError('LK_GRANT_INVALID', `the grant in ${from} is larger than ${MAX_GRANT_BYTES} bytes; nothing was stored`, { exitCode: ExitCode.usage });
}

async function readAll(stream: NodeJS.ReadableStream, from: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    total += b.length;
    if (total > MAX_GRANT_BYTES) throw tooLarge(from);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a grant file, bounded; a pipe (`--grant <(command)`) is fine, it is what the operator gave. */
async function readGrantFile(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    return await readAll(fh.createReadStream({ autoClose: false }), path);
  } finally {
    await fh.close();
  }
}

export const command: Command = {
  summary: 'install a grant obtained elsewhere (token endpoint JSON)',
  usage: 'latchkey import <source> --grant <file|->   (JSON: access_token, refresh_token, expires_in, optional scope, token_type, expires_at, iat)',
  async run(args, io: CliIO) {
    const { values, positionals } = parseArgs({ args, options: { grant: { type: 'string' } }, allowPositionals: true });
    const [source] = positionals;
    if (!source || positionals.length !== 1 || !values.grant) throw usageError(`usage: ${this.usage}`);
    const from = values.grant === '-' ? 'standard input' : values.grant;
    let text: string;
    try {
      text = values.grant === '-' ? await readAll(io.stdin, from) : await readGrantFile(values.grant);
    } catch (err) {
      if (err instanceof LatchkeyError) throw err;
      throw new LatchkeyError('LK_GRANT_INVALID', `cannot read the grant file ${from}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new LatchkeyError('LK_GRANT_INVALID', `the grant in ${from} is not valid JSON; nothing was stored`, { exitCode: ExitCode.usage });
    }
    const lk = await openLatchkey({ env: io.env });
    try {
      const src = lk.source(source);
      if (!src.oauth) {
        throw usageError(
          `source "${source}" has no oauth method (it uses ${src.methods.join(', ') || 'nothing'}), so a grant would never be used; nothing was stored. Give it an "oauth" section in ${lk.config.file} first (tokenEndpoint or issuer, clientId)`,
        );
      }
      const warnings: string[] = [];
      const grant = await lk.installGrant(source, json as never, { warnings }).catch((err: unknown) => {
        if (err instanceof LatchkeyError && err.code === 'LK_GRANT_INVALID') {
          throw new LatchkeyError(err.code, `${err.message} (in ${from}); nothing was stored`, { exitCode: ExitCode.usage });
        }
        throw err;
      });
      for (const w of warnings) io.stderr.write(`latchkey: warning: ${w}\n`);
      const exp = grant.expiresAt !== undefined ? `expires ${new Date(grant.expiresAt).toISOString()}` : 'unknown expiry';
      io.stdout.write(`imported a grant for "${source}" (${grant.refreshToken ? 'with' : 'without'} refresh token, ${exp})\n`);
    } finally {
      await lk.close();
    }
    return ExitCode.ok;
  },
};
