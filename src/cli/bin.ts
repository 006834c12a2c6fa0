#!/usr/bin/env node
import { ExitCode } from '../core/errors.js';
import { tryFastPath } from './fast-path.js';

// A fixed title: argv may hold URLs or paths the operator would rather not show in `ps`.
process.title = 'latchkey';

/**
 * The `latchkey` executable. `npm run build` bundles this file with the fast path into one
 * CommonJS file, dist/src/cli/latchkey.cjs (scripts/bundle-cli.mjs): that is the package's
 * `bin`, and it answers `latchkey token <source>` and a cached `latchkey preflight` about as
 * fast as `node -e 0`. Everything else, and anything the fast path declines, goes through
 * main.js (ESM), which loads each command when it runs. The tsc output of this file
 * (dist/src/cli/bin.js) runs the same code as ES modules: same behaviour, slower start.
 */
const argv = process.argv.slice(2);
let fast: number | undefined;
try {
  fast = tryFastPath(argv, process.env);
} catch (err) {
  // Only printing the answer can fail here (stdout closed): report it, do not run again.
  process.stderr.write(`latchkey: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
  fast = ExitCode.usage;
}
if (fast !== undefined) {
  process.exitCode = fast;
} else {
  import('./main.js')
    .then((m) => m.main(argv))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (err: unknown) => {
        // main() reports its own errors; this is for a CLI that failed to load.
        process.stderr.write(`latchkey: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = ExitCode.usage;
      },
    );
}
