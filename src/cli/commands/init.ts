import { access } from 'node:fs/promises';
import { homeProblem } from '../../config/home-problem.js';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { homeLabel, homePaths, latchkeyHome } from '../../paths.js';
import { readFailure } from '../../store/regular-file.js';
import { ensurePrivateDir, writeFileAtomic } from '../../store/atomic-file.js';
import type { Command } from '../io.js';

export const command: Command = {
  summary: 'create the profile directory and an empty config (LATCHKEY_HOME)',
  usage: 'latchkey init',
  async run(_args, io) {
    const paths = homePaths(latchkeyHome(io.env));
    const problem = await homeProblem(paths.home);
    if (problem) throw problem;
    await ensurePrivateDir(paths.home);
    try {
      await access(paths.config);
      io.stdout.write(`config already exists: ${paths.config} (left unchanged)\n`);
      return ExitCode.ok;
    } catch {
      // create it below
    }
    try {
      await writeFileAtomic(paths.config, `${JSON.stringify({ version: 1, sources: {} }, null, 2)}\n`, 0o600);
    } catch (err) {
      // A home this user cannot write (EACCES), a read-only or full disk: name the home.
      throw new LatchkeyError('LK_STORE_IO', `cannot write ${paths.config}: ${readFailure(err)} (${homeLabel(paths.home)} must be writable by this user)`, { cause: err });
    }
    io.stdout.write(`created ${paths.config}\nnext: latchkey add <source> --preset <name>  (or --token-endpoint/--issuer, or --token env:NAME)\n`);
    return ExitCode.ok;
  },
};
