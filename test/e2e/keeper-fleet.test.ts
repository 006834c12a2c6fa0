/**
 * Keepers of two machines (two LATCHKEY_HOMEs) on one PostgreSQL store: one leads the store,
 * the other refuses or, with --standby, stands by without probing, and takes over when the leader
 * is SIGKILLed (the advisory lock lives with the leader's connection). Real PostgreSQL, real IdP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgSkipReason } from '../fixtures/pg.js';
import { fleetKeeperStage, KeeperProcess } from './keeper-support.js';

const skip = pgSkipReason();
/** Short enough for a test; the standby tries the lock every second whatever the interval. */
const INTERVAL_S = 2;

test('keepers on one PostgreSQL store: one leads, a second refuses, a standby takes over when the leader is SIGKILLed', { skip }, async (t) => {
  const { idp, a, b, storeEnv } = await fleetKeeperStage(t);

  const leader = KeeperProcess.start(['--interval', String(INTERVAL_S), '--port', '0', '--standby'], { LATCHKEY_HOME: a.home, ...storeEnv });
  t.after(() => leader.kill());
  const leading = await leader.waitFor((e) => e.event === 'leading');
  assert.match(String(leading.message), /leads postgres:\/\//);
  await leader.waitFor((e) => e.event === 'cycle');

  // Another machine's keeper without --standby: refused, naming the store; it never probed.
  const refused = KeeperProcess.start(['--interval', String(INTERVAL_S), '--port', '0'], { LATCHKEY_HOME: b.home, ...storeEnv });
  const r = await refused.exited;
  assert.equal(r.code, 1, refused.stderr);
  assert.match(refused.stderr, /another keeper already leads the store postgres:\/\//);
  assert.equal(refused.count('cycle'), 0);

  const standby = KeeperProcess.start(['--interval', String(INTERVAL_S), '--port', '0', '--standby'], { LATCHKEY_HOME: b.home, ...storeEnv });
  t.after(() => standby.kill());
  const waiting = await standby.waitFor((e) => e.event === 'standby');
  assert.match(String(waiting.message), new RegExp(`pid ${leader.child.pid}.*standing by`));
  const cyclesBefore = leader.count('cycle');
  await leader.waitFor((e) => e.event === 'cycle', 15_000, leader.events.length);
  assert.ok(leader.count('cycle') > cyclesBefore, 'the leader keeps cycling');
  assert.equal(standby.count('cycle'), 0, 'the standby does not probe while the leader lives');

  const killedAt = Date.now();
  leader.child.kill('SIGKILL');
  await leader.exited;
  const took = await standby.waitFor((e) => e.event === 'leading', 30_000);
  assert.match(String(took.message), /leads postgres:\/\//);
  // Within one interval (the bound; here --interval 2): by the standby's own log line,
  // so a slow test process reading it later does not count.
  const tookOverMs = Date.parse(String(took.time)) - killedAt;
  assert.ok(tookOverMs <= INTERVAL_S * 1000, `the standby led ${tookOverMs} ms after the leader was killed (interval ${INTERVAL_S} s)`);
  t.diagnostic(`took over ${tookOverMs} ms after the SIGKILL`);
  await standby.waitFor((e) => e.event === 'cycle', 30_000);
  assert.equal(idp.stats.revokedGrants, 0);
  standby.child.kill('SIGINT');
  assert.equal((await standby.exited).code, 0, standby.stderr);
});
