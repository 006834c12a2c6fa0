import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LatchkeyError } from '../../errors.js';
import { openLatchkey } from '../../latchkey.js';
import { usageError, type CliIO, type Command } from '../io.js';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export const command: Command = {
  summary: 'install a grant obtained elsewhere (token endpoint JSON)',
  usage: 'latchkey import <source> --grant <file|->   (JSON: access_token, refresh_token, expires_in, optional scope, token_type)',
  async run(args, io: CliIO) {
    const { values, positionals } = parseArgs({ args, options: { grant: { type: 'string' } }, allowPositionals: true });
    const [source] = positionals;
    if (!source || positionals.length !== 1 || !values.grant) throw usageError(`usage: ${this.usage}`);
    const from = values.grant === '-' ? 'standard input' : values.grant;
    let text: string;
    try {
      text = values.grant === '-' ? await readAll(io.stdin) : await readFile(values.grant, 'utf8');
    } catch (err) {
      throw new LatchkeyError('LK_GRANT_INVALID', `cannot read the grant file ${from}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new LatchkeyError('LK_GRANT_INVALID', `the grant in ${from} is not valid JSON; nothing was stored`, { exitCode: 1 });
    }
    const lk = await openLatchkey({ env: io.env });
    try {
      const grant = await lk.installGrant(source, json as never).catch((err: unknown) => {
        if (err instanceof LatchkeyError && err.code === 'LK_GRANT_INVALID') {
          throw new LatchkeyError(err.code, `${err.message} (in ${from}); nothing was stored`, { exitCode: 1 });
        }
        throw err;
      });
      const exp = grant.expiresAt ? `expires ${new Date(grant.expiresAt).toISOString()}` : 'unknown expiry';
      io.stdout.write(`imported a grant for "${source}" (${grant.refreshToken ? 'with' : 'without'} refresh token, ${exp})\n`);
    } finally {
      await lk.close();
    }
    return 0;
  },
};
