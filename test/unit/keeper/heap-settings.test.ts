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

/** The young generation (MB) after churn, in a child process that runs `setup` first (with the module's exports in scope). */
function youngAfter(setup: string, churnRounds: number): number {
  const script = `
    const { keepKeeperHeapSmall, fitYoungGeneration, holdYoungGeneration } = await import(${JSON.stringify(MODULE)});
    const v8 = await import('node:v8');
    ${setup}
    let keep = [];
    // As the keeper does after each probe: a check every few hundred KB of allocation.
    for (let r = 0; r < ${churnRounds}; r++) {
      for (let i = 0; i < 2e5; i++) {
        keep.push({ a: i, b: 'x' + i, c: [i, i] });
        if (keep.length > 20000) keep = [];
        if (i % 2000 === 0) holdYoungGeneration();
      }
    }
    const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
    process.stdout.write(String(s.space_size / 1048576));
  `;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

test('keeper heap settings: a keeper of 10,000 sources gets a 16 MB young generation and keeps it there; 1,000 sources stay at 1 MB; a library process is not touched', async () => {
  const { youngGenerationMb: sized } = await import('../../../src/keeper/heap-settings.js');
  assert.deepEqual([500, 1000, 1249, 1250, 2500, 5000, 9999, 10_000, 100_000].map(sized), [1, 1, 1, 2, 4, 8, 8, 16, 16]);
  const big = youngAfter('keepKeeperHeapSmall(); fitYoungGeneration(10000);', 40);
  assert.equal(big, 16, `grown to 16 MB and held there (not doubled past it), got ${big} MB`);
  const small = youngAfter('keepKeeperHeapSmall(); fitYoungGeneration(1000);', 40);
  assert.ok(small <= 2, `1,000 sources: held small (${small} MB)`);
  // Without keepKeeperHeapSmall (a library user's process): V8's own rules, whatever the count.
  const library = youngAfter('fitYoungGeneration(10000);', 40);
  assert.ok(library > 16, `a library process grows the young generation by V8's defaults (${library} MB)`);
});
