import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'create or upgrade the PostgreSQL store\'s tables (once per store; safe to repeat)',
  usage: `latchkey migrate [--json]
  Applies the schema migrations the PostgreSQL store named by LATCHKEY_STORE (or the config's
  store.url) lacks, in one transaction; a second run changes nothing. The file store needs none.
  Exit codes: 0 migrated or already current, 1 no PostgreSQL store configured or a schema newer
  than this Latchkey, 3 the database did not answer.`,
  async run(args, io) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: false, strict: true });
    const paths = homePaths(latchkeyHome(io.env));
    const { loadConfig } = await import('../../config/load.js');
    // The config is optional here: LATCHKEY_STORE alone is enough to migrate.
    const config = await loadConfig(paths.config).catch((err: unknown) => {
      if (err instanceof LatchkeyError && err.code === 'LK_CONFIG_MISSING') return undefined;
      throw err;
    });
    const { storeUrl } = await import('../../store/open-store.js');
    const url = await storeUrl({ env: io.env, config: config?.raw.store });
    if (url === undefined) {
      throw usageError('latchkey migrate is for the PostgreSQL store: set LATCHKEY_STORE=postgres://user:password@host:port/database (or store.url in the config); the file store needs no migration');
    }
    const { PgStore } = await import('../../store/pg/pg-store.js');
    const store = new PgStore({ url, env: io.env });
    try {
      const r = await store.migrate();
      if (values.json) io.stdout.write(`${JSON.stringify({ store: store.location, schema: r.schema, from: r.from, to: r.to, applied: r.applied })}\n`);
      else if (r.applied.length === 0) io.stdout.write(`${store.location}: schema "${r.schema}" is current (version ${r.to}); nothing to do\n`);
      else io.stdout.write(`${store.location}: schema "${r.schema}" migrated from version ${r.from} to ${r.to} (${r.applied.join('; ')})\n`);
    } finally {
      await store.close();
    }
    return ExitCode.ok;
  },
};
