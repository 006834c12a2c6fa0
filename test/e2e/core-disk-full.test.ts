import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { runCli } from '../helpers/home.js';

/**
 * A real full disk: LATCHKEY_HOME on a tiny tmpfs. Needs mount(2) (root, or a container that
 * allows it); skipped, and says so, elsewhere.
 */
function canMount(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = join(tmpdir(), `lk-mount-probe-${process.pid}`);
  try {
    execFileSync('mkdir', ['-p', probe]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('rm', ['-rf', probe]);
  }
}

const mountable = canMount();
const PAGE = 4096;

let idp: Idp;
before(async () => {
  if (mountable) idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp?.close();
});

test('disk full after the IdP rotated: `latchkey token` prints the valid new token and warns on stderr that the rotation could not be saved', { skip: mountable ? false : 'needs mount(2) for a tiny tmpfs (root)' }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'lk-full-'));
  const home = join(base, 'home');
  execFileSync('mkdir', ['-m', '700', home]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96k,mode=0700', 'tmpfs', home]);
  t.after(async () => {
    execFileSync('umount', ['-l', home]);
    await rm(base, { recursive: true, force: true });
  });
  const env = { LATCHKEY_HOME: home };
  assert.equal((await runCli(['init'], { env })).code, 0);
  assert.equal((await runCli(['add', 'api', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env })).code, 0);
  const grant = await idp.mintGrant();
  // expires_in 1: due for refresh (skew is a third of the lifetime) a few hundred ms from now.
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ ...grant, expires_in: 1 }) });
  assert.equal(imp.code, 0, imp.stderr);
  const storePath = join(home, 'store.json');
  const before = await readFile(storePath);

  // Fill the disk, then free exactly two pages: room for the two lock files a refresh takes
  // (the source's and the document's), none for the new store.
  let n = 0;
  for (;;) {
    try {
      await writeFile(join(home, `fill-${n}`), Buffer.alloc(PAGE));
      n++;
    } catch {
      await unlink(join(home, `fill-${n}`)).catch(() => undefined);
      break;
    }
  }
  await unlink(join(home, `fill-${n - 1}`));
  await unlink(join(home, `fill-${n - 2}`));
  await new Promise((r) => setTimeout(r, 600));

  idp.stats.reset();
  const r = await runCli(['token', 'api'], { env });
  assert.equal(r.code, 0, r.stderr);
  const printed = r.stdout.trim();
  assert.notEqual(printed, grant.access_token, 'the refreshed token');
  assert.equal(r.stdout, `${printed}\n`, 'only the token on stdout');
  assert.equal(idp.stats.refreshRequests, 1);
  const res = await fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${printed}` } });
  assert.equal(res.status, 200, 'the printed token is valid');
  assert.match(r.stderr, /warning: api: refreshed at the IdP, but the new grant could not be saved to .*store\.json \(ENOSPC\)/);
  assert.match(r.stderr, /latchkey login api/);
  assert.ok(!r.stderr.includes(printed) && !r.stderr.includes(grant.refresh_token), 'no token on stderr');
  assert.deepEqual(await readFile(storePath), before, 'the store is whole, as it was');
});
