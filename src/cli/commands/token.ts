import { ExitCode } from '../../core/errors.js';
import { bearerMethod } from '../../config/resolve.js';
import { openLatchkey, type Latchkey } from '../../latchkey.js';
import { usageError, warnUnsaved, type CliIO, type Command } from '../io.js';
import { sanitizeRemoteText } from '../../core/sanitize.js';

export const command: Command = {
  summary: 'print a fresh access token (only the token and a newline)',
  usage: `latchkey token <source>
  Prints the token and a newline on stdout, nothing else. When the token endpoint is failing,
  the current token is printed (fail open) and stderr says so if it has already expired.`,
  async run(args, io) {
    if (args.length !== 1 || args[0]!.startsWith('-')) throw usageError(`usage: ${this.usage}`);
    const source = args[0]!;
    const lk = await openLatchkey({ env: io.env });
    let token: string;
    try {
      token = await lk.token(source);
      io.stdout.write(`${token}\n`);
      await warnExpired(lk, source, token, io);
    } finally {
      await lk.close();
    }
    warnUnsaved(lk, [source], io);
    return ExitCode.ok;
  },
};

/**
 * Fail open hands out the current token when the refresh failed; when that token is already
 * past its expiry the API will most likely refuse it: say so (stdout stays the token alone).
 */
async function warnExpired(lk: Latchkey, source: string, token: string, io: CliIO): Promise<void> {
  if (bearerMethod(lk.source(source)) !== 'oauth' || lk.engine.unsaved(source)) return;
  // The engine knows the token it just handed out: a store read is needed only for an expired one.
  if (lk.engine.knownUnexpired(source, token)) return;
  const rec = await lk.store.read(source).catch(() => undefined);
  const g = rec?.grant;
  const now = lk.clock.now();
  if (g?.expiresAt === undefined || now < g.expiresAt || g.accessToken.reveal() !== token) return;
  const why = rec?.lastFailure ? `the last refresh failed: ${sanitizeRemoteText(rec.lastFailure.message, 500)}` : 'it could not be refreshed';
  io.stderr.write(
    `latchkey: warning: ${source}: this access token expired ${Math.round((now - g.expiresAt) / 1000)} s ago and ${why}; the API will likely refuse it. Try again later; \`latchkey status\` shows the state\n`,
  );
}
