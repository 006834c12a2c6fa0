import { ExitCode } from '../../core/errors.js';
import { parseArgs } from 'node:util';
import { openLatchkey } from '../../latchkey.js';
import { usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'revoke a source’s grant at the IdP (RFC 7009) and remove it',
  usage: `latchkey logout <source> [--force]
  --force   remove the grant locally even when the IdP cannot be reached to revoke it
  Exit codes: 0 logged out (or nothing stored), 1 usage or config error (or the IdP refused), 3 IdP unreachable (grant kept).`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options: { force: { type: 'boolean' } }, allowPositionals: true, strict: true });
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw usageError(`expected exactly one source name\nusage: ${this.usage}`);
    const lk = await openLatchkey({ env: io.env });
    try {
      const { logout } = await import('../../login/logout.js');
      const r = await logout(lk, source, { force: values.force === true });
      for (const w of r.warnings) io.stderr.write(`warning: ${w}\n`);
      if (!r.hadGrant) {
        io.stdout.write(`no grant stored for "${source}"; nothing to revoke or remove\n`);
        return ExitCode.ok;
      }
      const removed = r.removed ? 'removed the stored grant' : 'the stored grant was already gone';
      switch (r.revocation) {
        case 'revoked': {
          const what = [r.revoked.refreshToken ? 'refresh token' : '', r.revoked.accessToken ? 'access token' : ''].filter(Boolean).join(' and ');
          io.stdout.write(`logged out of "${source}": revoked the ${what} at ${r.revocationEndpoint} and ${removed}\n`);
          break;
        }
        case 'not_offered':
          io.stdout.write(
            `logged out of "${source}" locally: ${removed}; the IdP offers no token revocation, so the tokens stay valid there until they expire (revoke the app's access in the provider's account settings)\n`,
          );
          break;
        case 'failed_forced':
          io.stdout.write(`logged out of "${source}" locally (--force): ${removed}; revocation at the IdP failed, so the tokens stay valid there until they expire\n`);
          break;
        case 'none':
          io.stdout.write(`logged out of "${source}": ${removed}\n`);
          break;
      }
      return ExitCode.ok;
    } finally {
      await lk.close();
    }
  },
};
