import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startIdp } from '../fixtures/idp.js';
import { idpHome } from '../helpers/lk.js';
import { repoRoot } from '../helpers/home.js';

interface ChildResult {
  ok: number;
  unauthorized: number;
  errors: number;
  messages: string[];
}

function runChild(args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist/test/helpers/stampede-child.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`stampede child exited ${code}`));
      else resolve(JSON.parse(out) as ChildResult);
    });
  });
}

test('multi-process stampede on a rotating grant: zero revoked grants, every call authorized', async (t) => {
  // TTL 3 s (counted as 2 s): short enough for many rotations in the run, with room for a
  // loaded CI machine between taking a token and the resource server checking it.
  const idp = await startIdp({ accessTokenTtl: 3 });
  t.after(() => idp.close());
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const lk = await h.open();
  await lk.installGrant('idp', await idp.mintGrant());
  idp.stats.reset();
  const durationMs = 6_000;
  const results = await Promise.all(Array.from({ length: 4 }, () => runChild([h.home, idp.protectedUrl, '16', String(durationMs)])));
  const total = results.reduce((a, r) => ({ ok: a.ok + r.ok, unauthorized: a.unauthorized + r.unauthorized, errors: a.errors + r.errors }), { ok: 0, unauthorized: 0, errors: 0 });
  assert.equal(idp.stats.revokedGrants, 0, 'no grant revoked by reuse detection');
  assert.equal(total.errors, 0, `errors: ${results.flatMap((r) => r.messages).join('; ')}`);
  assert.equal(total.unauthorized, 0, 'every protected call authorized');
  assert.ok(total.ok > 100, `made ${total.ok} calls`);
  // TTL 3 s counted as 2 s (expires_in is second-granular), refreshed at 2/3 of that: one
  // refresh per ~1.33 s window across all processes, never one per process.
  const windows = Math.ceil(durationMs / ((3000 - 1000) * (2 / 3)));
  assert.ok(idp.stats.refreshRequests <= windows + 2, `refreshes ${idp.stats.refreshRequests} <= ${windows + 2}`);
  assert.ok(idp.stats.refreshRequests >= 2, 'refreshes actually happened');
});
