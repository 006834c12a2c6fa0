// Builds the `latchkey` executable, dist/src/cli/latchkey.cjs (package.json `bin`): the CLI
// entry (src/cli/bin.ts) and its synchronous fast path (src/cli/fast-path.ts) with the pure
// modules it uses, bundled into one CommonJS file. Run after tsc (`npm run build`).
//
// Why CommonJS: `latchkey token <source>` must start about as fast as `node -e 0`. The ESM
// loader costs ~0.5-1 ms per module plus its own start-up; one CJS file that requires only
// node:fs/node:path/node:os does not. Everything the fast path declines goes through
// `import('./main.js')`, the tsc output beside it (left external: each module of the full CLI
// exists once per process, and commands stay lazily loaded).
//
// The bundle is checked: no package, and no builtin beyond node:fs, node:path and node:os
// (node:fs/promises, node:crypto, node:stream… cost milliseconds at start-up), and a size
// bound. Without esbuild (an install without dev dependencies) a two-line entry that imports
// the tsc output (dist/src/cli/bin.js) is written instead: same behaviour, slower start.
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

const ENTRY = resolve('src/cli/bin.ts');
const OUT = resolve('dist/src/cli/latchkey.cjs');
const MAIN = resolve('dist/src/cli/main.js');
const ALLOWED_BUILTINS = new Set(['node:fs', 'node:path', 'node:os']);
const MAX_BYTES = 64 * 1024;

if (!existsSync(MAIN)) {
  console.error(`bundle-cli: ${relative(process.cwd(), MAIN)} is missing; run tsc first (npm run build)`);
  process.exit(1);
}

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.error('bundle-cli: esbuild is not installed; writing an entry that loads the unbundled CLI (dist/src/cli/bin.js)');
  writeFileSync(OUT, "#!/usr/bin/env node\n'use strict';\nimport('./bin.js');\n");
  chmodSync(OUT, 0o755);
  process.exit(0);
}

const result = await esbuild.build({
  entryPoints: [ENTRY],
  outfile: OUT,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
  plugins: [
    {
      // The full CLI stays the tsc output next to the bundle, loaded only when needed.
      name: 'main-external',
      setup: (b) => b.onResolve({ filter: /^\.\/main\.js$/ }, (a) => (resolve(a.importer) === ENTRY ? { path: './main.js', external: true } : undefined)),
    },
  ],
});
chmodSync(OUT, 0o755);

const out = Object.values(result.metafile.outputs)[0];
const problems = [];
for (const i of out.imports) {
  if (i.path === './main.js') {
    if (i.kind !== 'dynamic-import') problems.push('main.js is loaded eagerly (it must stay behind import())');
  } else if (!ALLOWED_BUILTINS.has(i.path)) {
    problems.push(`${i.path} (${i.kind})`);
  }
}
if (out.bytes > MAX_BYTES) problems.push(`the bundle is ${Math.round(out.bytes / 1024)} KiB (limit ${MAX_BYTES / 1024} KiB)`);
if (problems.length > 0) {
  console.error(`bundle-cli: the fast CLI entry must load only ${[...ALLOWED_BUILTINS].join(', ')} and main.js (lazily):\n  ${problems.join('\n  ')}`);
  console.error('  import the module lazily where it is used, or keep it out of src/cli/fast-path.ts');
  process.exit(1);
}
console.error(`bundle-cli: ${relative(process.cwd(), OUT)}: ${Object.keys(result.metafile.inputs).length} modules, ${Math.round(out.bytes / 1024)} KiB`);
