import { access } from 'node:fs/promises';
import { homePaths, latchkeyHome } from '../../paths.js';
import { ensurePrivateDir, writeFileAtomic } from '../../store/atomic-file.js';
import type { Command } from '../io.js';

export const command: Command = {
  summary: 'create the profile directory and an empty config (LATCHKEY_HOME)',
  usage: 'latchkey init',
  async run(_args, io) {
    const paths = homePaths(latchkeyHome(io.env));
    await ensurePrivateDir(paths.home);
    try {
      await access(paths.config);
      io.stdout.write(`config already exists: ${paths.config} (left unchanged)\n`);
      return 0;
    } catch {
      // create it below
    }
    await writeFileAtomic(paths.config, `${JSON.stringify({ version: 1, sources: {} }, null, 2)}\n`, 0o600);
    io.stdout.write(`created ${paths.config}\nnext: latchkey add <source> --preset <name>  (or --token-endpoint/--issuer, or --token env:NAME)\n`);
    return 0;
  },
};
