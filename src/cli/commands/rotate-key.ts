import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { usageError, type Command } from '../io.js';

const USAGE = `latchkey rotate-key [--store <url>] [--json]
  Re-wraps every secret of the PostgreSQL store (LATCHKEY_STORE, or --store) under the master key
  in LATCHKEY_MASTER_KEY, online. Before running it, give EVERY process of the store both keys:
    LATCHKEY_MASTER_KEY=<new key>  LATCHKEY_MASTER_KEY_PREVIOUS=<old key>
  (each a base64 key or a reference: env:, file:, keyring:), so that each opens values under
  either key while the rows are re-wrapped. When it reports 0 rows left under another key, drop
  LATCHKEY_MASTER_KEY_PREVIOUS everywhere. Re-running is safe.`;

export const command: Command = {
  summary: 're-wrap every secret of the PostgreSQL store under a new master key, online',
  usage: USAGE,
  async run(args, io) {
    const { values } = parseArgs({ args, options: { store: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
    const url = values.store ?? io.env.LATCHKEY_STORE;
    if (url === undefined || url.trim() === '') throw usageError(`rotate-key: no store: set LATCHKEY_STORE=postgres://… or give --store\nusage: ${USAGE}`);
    const [{ isPostgresUrl, parsePgUrl }, { masterKeyringFromEnv }, { rotateMasterKey }] = await Promise.all([
      import('../../store/pg/url.js'),
      import('../../store/pg/master-keyring.js'),
      import('../../store/pg/rotate-key.js'),
    ]);
    if (!isPostgresUrl(url)) {
      throw usageError(`rotate-key: ${values.store !== undefined ? '--store' : 'LATCHKEY_STORE'} is not a postgres:// URL; the file store is not encrypted by Latchkey (its protection is the file's 0600 mode), so there is no key to rotate`);
    }
    const target = parsePgUrl(url);
    const ring = await masterKeyringFromEnv(io.env);
    const report = await rotateMasterKey(target, ring);
    if (values.json) io.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      io.stdout.write(
        `rotate-key: ${target.location} now under master key ${report.keyId}: ` +
          `${report.sources.rewrapped} source(s) and ${report.entries.rewrapped} entr${report.entries.rewrapped === 1 ? 'y' : 'ies'} re-wrapped, ` +
          `${report.sources.current} source(s) and ${report.entries.current} entr${report.entries.current === 1 ? 'y' : 'ies'} already under it (${report.passes} pass${report.passes === 1 ? '' : 'es'})\n`,
      );
    }
    if (report.failures.length > 0) {
      const first = report.failures[0]!;
      throw new LatchkeyError(
        first.code === 'LK_STORE_KEY' ? 'LK_STORE_KEY' : 'LK_STORE_CORRUPT',
        `rotate-key: ${report.failures.length} value(s) could not be re-wrapped and were left as they are (${report.failures.map((f) => f.row).slice(0, 5).join(', ')}${report.failures.length > 5 ? ', …' : ''}): ${first.message}`,
        { fix: first.code === 'LK_STORE_KEY' ? 'add the key those values were sealed with to LATCHKEY_MASTER_KEY_PREVIOUS and run latchkey rotate-key again' : undefined },
      );
    }
    if (report.remaining > 0) {
      throw new LatchkeyError(
        'LK_STORE_KEY',
        `rotate-key: ${report.remaining} row(s) are still sealed under another key after ${report.passes} passes: a process of this store still seals with the old key as its current one`,
        { fix: 'give every process LATCHKEY_MASTER_KEY=<new key> (and the old one in LATCHKEY_MASTER_KEY_PREVIOUS), then run latchkey rotate-key again', exitCode: ExitCode.unreachable },
      );
    }
    return ExitCode.ok;
  },
};
