/**
 * The layout rules (.dependency-cruiser.cjs, run by `npm test`) catch what they are meant to:
 * dependency-cruiser runs with the repository's rule set over a small tree that breaks each
 * rule once, and over one that breaks none. Without the second run a rule set that fails on
 * everything (a typo in the config) would pass the first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../helpers/home.js';

const DEPCRUISE = join(repoRoot, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const RULES = join(repoRoot, '.dependency-cruiser.cjs');

const TSCONFIG = JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['src', 'test'] });

interface Violation {
  rule: string;
  from: string;
  to: string;
}

async function cruise(files: Record<string, string>): Promise<{ status: number | null; violations: Violation[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'lk-layout-'));
  try {
    await writeFile(join(dir, 'tsconfig.json'), TSCONFIG);
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    // The default (`err`) output, as `npm run depcruise` prints it: its exit status is what fails
    // CI (the JSON reporter exits 0 whatever it finds).
    const r = spawnSync(process.execPath, [DEPCRUISE, 'src', '--config', RULES], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.stderr.includes('Error:'), false, `depcruise failed to run: ${r.stderr}`);
    const violations = [...r.stdout.matchAll(/error ([\w-]+): (\S+) →\s*(\S+)/g)].map((m) => ({ rule: m[1]!, from: m[2]!, to: m[3]! }));
    return { status: r.status, violations };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function rulesHit(violations: Violation[]): Map<string, string[]> {
  const byRule = new Map<string, string[]>();
  for (const v of violations) byRule.set(v.rule, [...(byRule.get(v.rule) ?? []), `${v.from} → ${v.to}`]);
  return byRule;
}

test('the layout rules fail on a type-only cycle, a reach-back into latchkey.ts, a gateway importing the keeper, oauth reading config and src importing a test', async () => {
  const { status, violations } = await cruise({
    // A cycle made only of `import type`: it disappears from the emitted JS, not from the design.
    'src/config/secret-ref.ts': "import type { Keyring } from './keyring.js';\nexport type Ref = { keyring?: Keyring };\n",
    'src/config/keyring.ts': "import type { Ref } from './secret-ref.js';\nexport type Keyring = { ref: Ref };\n",
    'src/latchkey.ts': 'export class Latchkey {}\n',
    'src/methods/method.ts': "import type { Latchkey } from '../latchkey.js';\nexport type M = { lk: Latchkey };\n",
    'src/keeper/keeper.ts': 'export const keeper = 1;\n',
    'src/gateway/routes.ts': "import { keeper } from '../keeper/keeper.js';\nexport const routes = keeper;\n",
    'src/remote/liveness.ts': "import type { M } from '../methods/method.js';\nexport type L = M;\n",
    'src/oauth/refresh.ts': "import type { Ref } from '../config/secret-ref.js';\nexport type R = Ref;\n",
    'src/store/file-store.ts': "import { home } from '../../test/helpers/home.js';\nexport const store = home;\n",
    'test/helpers/home.ts': 'export const home = 1;\n',
  });
  assert.notEqual(status, 0, 'depcruise must exit non-zero on a violation (npm test relies on it)');
  const hit = rulesHit(violations);
  assert.ok(hit.get('no-circular')?.some((v) => v.includes('src/config/keyring.ts') || v.includes('src/config/secret-ref.ts')), `no cycle reported: ${JSON.stringify([...hit])}`);
  assert.deepEqual(hit.get('no-latchkey-from-lower-layers'), ['src/methods/method.ts → src/latchkey.ts']);
  assert.deepEqual(hit.get('gateway-remote-stay-on-the-core')?.sort(), ['src/gateway/routes.ts → src/keeper/keeper.ts', 'src/remote/liveness.ts → src/methods/method.ts']);
  assert.deepEqual(hit.get('oauth-is-protocol-only'), ['src/oauth/refresh.ts → src/config/secret-ref.ts']);
  assert.deepEqual(hit.get('src-never-imports-tests'), ['src/store/file-store.ts → test/helpers/home.ts']);
});

test('the layout rules pass a tree that keeps them (the rule set is not failing on everything)', async () => {
  const { status, violations } = await cruise({
    'src/context.ts': "import type { Store } from './store/store.js';\nexport interface CoreContext { store: Store }\n",
    'src/store/store.ts': 'export interface Store { read(): Promise<string> }\n',
    'src/methods/method.ts': "import type { CoreContext } from '../context.js';\nexport type M = { lk: CoreContext };\n",
    'src/latchkey.ts': "import type { CoreContext } from './context.js';\nimport type { M } from './methods/method.js';\nexport type L = CoreContext & { m?: M };\n",
    'src/gateway/routes.ts': "import type { Store } from '../store/store.js';\nexport type G = Store;\n",
  });
  assert.deepEqual(violations, []);
  assert.equal(status, 0);
});
