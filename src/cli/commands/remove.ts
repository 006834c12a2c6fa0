import { ExitCode } from '../../core/errors.js';
import { parseArgs } from 'node:util';
import { COMMENTS_DROPPED, updateConfigFile } from '../../config/write.js';
import { openLatchkey } from '../../latchkey.js';
import { usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'remove a source: its config entry and its stored credentials (--revoke: revoke at the IdP first)',
  usage: `latchkey remove <source> [--revoke]
  Removes sources.<source> from config.json and its record in store.json (grant, session cookies).
  --revoke   revoke the grant at the IdP first (RFC 7009, as \`latchkey logout\`); if that fails, nothing is removed
  A secret behind a reference (keyring:, file:) is kept: it may be shared; \`latchkey secrets rm <ref>\` deletes it.
  Exit codes: 0 removed, 1 usage or config error, 3 IdP unreachable with --revoke (nothing removed).`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options: { revoke: { type: 'boolean' } }, allowPositionals: true, strict: true });
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw usageError(`expected exactly one source name\nusage: ${this.usage}`);
    const lk = await openLatchkey({ env: io.env });
    let revoked = '';
    let hadRecord = false;
    let hadGrant = false;
    let kept: string[] = [];
    try {
      const src = lk.source(source); // an unknown name is an error naming the config (with did-you-mean)
      kept = [src.token?.secret, src.oauth?.clientSecret, src.session?.cookieHeader].filter((r): r is string => r !== undefined && !r.startsWith('env:'));
      if (values.revoke) {
        if (!src.oauth) throw usageError(`--revoke: source "${source}" has no OAuth grant to revoke; run without --revoke`);
        const { logout } = await import('../../login/logout.js');
        // Throws (and nothing is removed) when the IdP cannot be reached or refuses.
        const r = await logout(lk, source, { force: false });
        for (const w of r.warnings) io.stderr.write(`warning: ${w}\n`);
        if (r.revocation === 'revoked') revoked = `; revoked its grant at ${r.revocationEndpoint}`;
        else if (r.revocation === 'not_offered') revoked = '; the IdP offers no revocation, so its tokens stay valid there until they expire';
      }
      // Under the source's lock: a refresh in flight finishes (and saves) before the record goes.
      await lk.store.withLock(source, async (tx) => {
        const rec = await tx.read(source);
        if (!rec) return;
        hadRecord = true;
        hadGrant = rec.grant !== undefined;
        await tx.remove(source, rec.version);
      });
      lk.engine.invalidate(source);
    } finally {
      await lk.close();
    }
    const { droppedComments } = await updateConfigFile(lk.config.file, (raw) => {
      if (raw.sources) delete raw.sources[source];
    });
    io.stdout.write(`removed source "${source}" from ${lk.config.file}${hadRecord ? ` and its stored credentials from ${lk.store.location}` : ''}${revoked}\n`);
    if (hadGrant && !values.revoke) {
      io.stdout.write(`note: nothing was revoked at the IdP; a grant stays valid there until it expires (to revoke it first, next time: latchkey remove <source> --revoke)\n`);
    }
    if (droppedComments) io.stdout.write(COMMENTS_DROPPED);
    for (const ref of kept) io.stdout.write(`kept the secret behind ${ref}; to delete it: latchkey secrets rm ${ref}\n`);
    return ExitCode.ok;
  },
};
