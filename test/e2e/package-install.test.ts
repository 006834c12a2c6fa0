/**
 * Installing Latchkey like a CLI people know: `npm install` leaves a fresh clone clean (the
 * lock file agrees with package.json), `npm install -g .` (the README's step) puts a working
 * `latchkey` on PATH, and a TypeScript user without @types/node in their own tsconfig can
 * typecheck against the published types.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/home.js';

interface PackageJson {
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

test('package-lock.json agrees with package.json (bin, dependencies), so `npm install` does not rewrite it', async () => {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as { version: string; packages: Record<string, Partial<PackageJson> & { dev?: boolean }> };
  const root = lock.packages['']!;
  assert.deepEqual(root.bin, pkg.bin, 'the bin npm records is the bin package.json declares');
  assert.deepEqual(root.dependencies, pkg.dependencies);
  assert.deepEqual(root.devDependencies, pkg.devDependencies);
  assert.equal(lock.version, pkg.version);
  for (const dep of Object.keys(pkg.dependencies)) assert.notEqual(lock.packages[`node_modules/${dep}`]?.dev, true, `${dep} is a runtime dependency in the lock too`);
  assert.ok(existsSync(join(repoRoot, pkg.bin.latchkey!)), 'the bin exists after the build');
});

const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });

test('`npm install -g .` (the README step) puts a latchkey on PATH that runs and agrees on its version', { skip: npm.status !== 0 ? 'npm is not on PATH' : false, timeout: 120_000 }, async (t) => {
  const prefix = await mkdtemp(join(tmpdir(), 'lk-prefix-'));
  t.after(() => rm(prefix, { recursive: true, force: true }));
  // A global install of a folder links to it: nothing is downloaded (--offline proves it).
  const r = spawnSync('npm', ['install', '-g', '.', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const { version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  for (const arg of ['--version', '-v', 'version']) {
    const v = spawnSync('latchkey', [arg], { encoding: 'utf8', env: { PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, HOME: prefix } });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout, `${version}\n`, arg);
  }
});

test('the published types typecheck for a consumer with "types": [] (no @types/node of its own)', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lk-consumer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'node_modules'));
  await symlink(repoRoot, join(dir, 'node_modules', 'latchkey'));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  await writeFile(
    join(dir, 'consumer.ts'),
    `import { openLatchkey, LatchkeyError, type SourceStatus } from 'latchkey';
const lk = await openLatchkey();
const token: string = await lk.token('api');
const rows: SourceStatus[] = await lk.status();
export const seen = [token, rows.length, LatchkeyError.name];
`,
  );
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: [], noEmit: true, skipLibCheck: false }, files: ['consumer.ts'] }),
  );
  const tsc = join(repoRoot, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `tsc: ${r.stdout}${r.stderr}`);
});
