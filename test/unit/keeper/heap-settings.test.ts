import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The keeper command's heap settings (src/keeper/heap-settings.ts) take effect in a process
 * already running on bare `node`: under the same allocation pattern (short-lived garbage with
 * a steady share surviving, like a cycle of probes), V8's young generation stays at its
 * initial size, where without them it grows.
 */

const MODULE = fileURLToPath(new URL('../../../src/keeper/heap-settings.js', import.meta.url));

function youngGenerationMb(apply: boolean): number {
  const script = `
    const { keepKeeperHeapSmall } = await import(${JSON.stringify(MODULE)});
    const v8 = await import('node:v8');
    if (${apply}) keepKeeperHeapSmall();
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ a: i, b: 'x' + i, c: [i, i] }); if (keep.length > 2000) keep = []; }
    const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    process.stdout.write(String(s.space_size / 1048576));
  `;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

test('keeper heap settings: the young generation stays at its initial size on bare node', () => {
  const without = youngGenerationMb(false);
  const withSettings = youngGenerationMb(true);
  assert.ok(without > 4, `without the settings V8 grows the young generation (here to ${without} MB), or this test proves nothing`);
  assert.ok(withSettings <= 4, `with them it stays small (here ${withSettings} MB)`);
});
