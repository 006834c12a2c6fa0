import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { usageError, type Command } from '../io.js';

const USAGE = `latchkey rotate-key [--store <url>] [--retire] [--json]
  Re-wraps every secret of the PostgreSQL store (LATCHKEY_STORE, or --store) under the master key
  in LATCHKEY_MASTER_KEY, online; LATCHKEY_MASTER_KEY_OTHER holds the old key (each a base64 key
  or a reference: env:, file:, keyring:). The whole rotation, with the store serving throughout:
    1. every process: LATCHKEY_MASTER_KEY_OTHER=<new>   (opens values under either key)
    2. LATCHKEY_MASTER_KEY=<new> LATCHKEY_MASTER_KEY_OTHER=<old> latchkey rotate-key
    3. every process: LATCHKEY_MASTER_KEY=<new> LATCHKEY_MASTER_KEY_OTHER=<old>
    4. LATCHKEY_MASTER_KEY=<new> LATCHKEY_MASTER_KEY_OTHER=<old> latchkey rotate-key --retire
    5. every process: drop LATCHKEY_MASTER_KEY_OTHER
  --retire retires every other key once no value uses it (refused while one does). Re-running is safe.`;

export const command: Command = {
  summary: 're-wrap every secret of the PostgreSQL store under a new master key, online',
  usage: USAGE,
  async run(args, io) {
    const { values } = parseArgs({ args, options: { store: { type: 'string' }, retire: { type: 'boolean' }, json: { type: 'boolean' } }, strict: true });
    const url = values.store ?? io.env.LATCHKEY_STORE;
    if (url === undefined || url.trim() === '') throw usageError(`rotate-key: no store: set LATCHKEY_STORE=postgres://… or give --store\nusage: ${USAGE}`);
    const [{ isPostgresUrl }, { masterKeyringFromEnv }, { PgStore }, { rotateMasterKey }] = await Promise.all([
      import('../../store/pg/url.js'),
      import('../../store/pg/master-keyring.js'),
      import('../../store/pg/pg-store.js'),
      import('../../store/pg/rotate-key.js'),
    ]);
    if (!isPostgresUrl(url)) {
      throw usageError(`rotate-key: ${values.store !== undefined ? '--store' : 'LATCHKEY_STORE'} is not a postgres:// URL; the file store is not encrypted by Latchkey (its protection is the file's 0600 mode), so there is no key to rotate`);
    }
    const ring = await masterKeyringFromEnv(io.env);
    const store = new PgStore({ url, env: io.env, masterKey: ring });
    try {
      const report = await rotateMasterKey(store, ring.current.id, { retire: values.retire === true }).catch((err: unknown) => {
        if (err instanceof LatchkeyError && err.code === 'LK_STORE_KEY' && /was sealed with master key/.test(err.message)) {
          throw new LatchkeyError('LK_STORE_KEY', err.message, { fix: 'set LATCHKEY_MASTER_KEY_OTHER to the key those values were sealed with (the old key), then run latchkey rotate-key again', cause: err });
        }
        throw err;
      });
      if (values.json) io.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        io.stdout.write(
          `rotate-key: ${store.location}: ${report.rewrapped} row(s) re-wrapped under master key ${report.keyId}; ${report.remaining} still under another key` +
            `${report.retired.length > 0 ? `; retired ${report.retired.join(', ')}` : ''}${report.activeOthers.length > 0 ? `; still active: ${report.activeOthers.join(', ')}` : ''}\n`,
        );
      }
      if (values.retire && report.remaining > 0) {
        throw new LatchkeyError('LK_STORE_KEY', `rotate-key: ${report.remaining} value(s) are still sealed under another key, so it was not retired: a process of this store still seals with the old key as its current one`, {
          fix: 'give every process LATCHKEY_MASTER_KEY=<new key> (and the old one in LATCHKEY_MASTER_KEY_OTHER), then run latchkey rotate-key --retire again',
          exitCode: ExitCode.unreachable,
        });
      }
      return ExitCode.ok;
    } finally {
      await store.close();
    }
  },
};
