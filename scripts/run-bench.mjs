// Runs every benchmark in dist/bench; each prints one JSON line per figure.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const filter = process.argv[2];
const files = readdirSync('dist/bench')
  .filter((f) => f.endsWith('.bench.js') && (!filter || f.includes(filter)))
  .sort();
let failed = 0;
for (const f of files) {
  const r = spawnSync(process.execPath, [join('dist/bench', f)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench ${f} exited with ${r.status}`);
  }
}
process.exit(failed ? 1 : 0);
