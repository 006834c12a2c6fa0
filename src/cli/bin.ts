#!/usr/bin/env node
// A fixed title: argv may hold URLs or paths the operator would rather not show in `ps`.
process.title = 'latchkey';

/**
 * `latchkey token <source>` is what scripts run once per job, so it takes a short route that
 * loads only the token command's modules; everything else goes through main.js, which loads
 * each command when it runs. `npm run build` also bundles this file with the token route
 * (scripts/bundle-cli.mjs) so that route is one file to load; plain `tsc` output runs the
 * same code unbundled.
 */
const argv = process.argv.slice(2);
const [name, source] = argv;
const run: Promise<number> =
  name === 'token' && argv.length === 2 && source !== undefined && !source.startsWith('-')
    ? import('./token-route.js').then((m) => m.runToken(source))
    : import('./main.js').then((m) => m.main(argv));
run.then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Both routes report their own errors; this is for a route that failed to load.
    process.stderr.write(`latchkey: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
