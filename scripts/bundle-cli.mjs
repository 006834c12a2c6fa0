// Bundles the token route of the CLI entry (dist/src/cli/bin.js, as compiled by tsc) in
// place, so that `latchkey token <source>` loads a handful of files instead of ~17 modules:
// Node pays ~0.5-1 ms per ESM module (resolve, read, compile, link), a large part of the
// gap to `node -e 0`. Run after tsc (`npm run build`); without esbuild (an install without
// dev dependencies) the unbundled entry is left in place: same behaviour, slower start.
//
// What goes into the bundle: the modules the token route imports statically (S), minus
// every module that something loaded lazily (`await import(...)`) can also reach (C). Those,
// and main.js with every other command, stay the files tsc wrote, imported from the bundle
// by relative path. So each module exists once per process, never as a bundled copy plus a
// tsc copy (`err instanceof LatchkeyError` keeps working), and lazy modules stay lazy: their
// own imports (valibot, oauth4webapi, node:crypto…) are not hoisted into the start-up path.
// Packages are never bundled.
import { dirname, relative, resolve, sep } from 'node:path';
import { readFileSync } from 'node:fs';

const ENTRY = resolve('dist/src/cli/bin.js');
const ROUTE = resolve('dist/src/cli/token-route.js');
const CLI_DIR = dirname(ENTRY);
/** Builtins the token route may load at start-up; anything else hoisted to the top is reported. */
const EAGER_OK = new Set(['node:fs/promises', 'node:path', 'node:os', 'node:module']);

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.error('bundle-cli: esbuild is not installed; leaving the unbundled CLI entry in place');
  process.exit(0);
}

if (!readFileSync(ENTRY, 'utf8').includes("import('./main.js')")) {
  console.error(`bundle-cli: ${ENTRY} is not the tsc output of src/cli/bin.ts (already bundled?); run tsc first`);
  process.exit(1);
}

const common = {
  entryPoints: [ENTRY],
  outfile: ENTRY,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
};

// main.js (and with it every other command) always stays a separate module.
const isMain = (args) => args.path === './main.js' && resolve(args.importer) === ENTRY;

// Pass 1: the module graph.
const graph = await esbuild.build({
  ...common,
  write: false,
  plugins: [{ name: 'main-external', setup: (b) => b.onResolve({ filter: /^\.\/main\.js$/ }, (a) => (isMain(a) ? { path: './main.js', external: true } : undefined)) }],
});
const edges = new Map();
for (const [path, input] of Object.entries(graph.metafile.inputs)) {
  edges.set(
    resolve(path),
    input.imports.filter((i) => !i.external).map((i) => ({ to: resolve(i.path), lazy: i.kind === 'dynamic-import' })),
  );
}

// S: the route's static closure. bin.js's own dynamic imports are the two routes: only the
// token route counts.
const S = new Set();
const lazyTargets = new Set();
const walkStatic = (m) => {
  if (S.has(m)) return;
  S.add(m);
  if (m === ENTRY) return;
  for (const e of edges.get(m) ?? []) {
    if (e.lazy) lazyTargets.add(e.to);
    else walkStatic(e.to);
  }
};
walkStatic(ENTRY);
walkStatic(ROUTE);
// C: everything reachable, statically or lazily, from what the route loads lazily.
const C = new Set();
const walkAll = (m) => {
  if (C.has(m)) return;
  C.add(m);
  for (const e of edges.get(m) ?? []) walkAll(e.to);
};
for (const t of lazyTargets) walkAll(t);
const bundled = new Set([...S].filter((m) => !C.has(m)));

// Pass 2: bundle S \ C; every other module of ours is imported from the file tsc wrote.
const result = await esbuild.build({
  ...common,
  allowOverwrite: true,
  plugins: [
    {
      name: 'keep-tsc-modules',
      setup(b) {
        b.onResolve({ filter: /^\.\.?\// }, (a) => {
          if (isMain(a)) return { path: './main.js', external: true };
          const target = resolve(a.resolveDir, a.path);
          if (bundled.has(target)) return undefined;
          const rel = relative(CLI_DIR, target).split(sep).join('/');
          return { path: rel.startsWith('.') ? rel : `./${rel}`, external: true };
        });
      },
    },
  ],
});

const out = result.metafile.outputs[relative(process.cwd(), ENTRY)] ?? Object.values(result.metafile.outputs)[0];
const eager = [...new Set((out?.imports ?? []).filter((i) => i.kind === 'import-statement' && i.external).map((i) => i.path))];
const slow = eager.filter((p) => p.startsWith('node:') && !EAGER_OK.has(p));
const packages = eager.filter((p) => !p.startsWith('node:') && !p.startsWith('.'));
if (slow.length > 0 || packages.length > 0) {
  console.error(`bundle-cli: warning: \`latchkey token\` now loads ${[...slow, ...packages].join(', ')} at start-up; import it lazily where it is used`);
}
const separate = eager.filter((p) => p.startsWith('.'));
console.error(
  `bundle-cli: ${relative(process.cwd(), ENTRY)}: ${bundled.size} modules in one file (${Math.round((out?.bytes ?? 0) / 1024)} KiB); ` +
    `loaded beside it at start-up: ${separate.length ? separate.join(', ') : 'none'}`,
);
