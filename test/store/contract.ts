import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TokenEngine, type EngineEvent } from '../../src/engine/fresh-token.js';
import type { LatchkeyError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import type { SourceRecordInput, Store, StoreTx } from '../../src/store/store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { TestClock } from '../helpers/lk.js';
import { DelegatingStore, writeRecord } from '../helpers/store.js';
import { holdLock } from './hold-lock.js';

/**
 * The store contract v2 (src/store/store.ts), as one suite every backend runs: the file store now
 * (test/unit/file-store-contract.test.ts), PostgreSQL in the fleet issue. Each test can fail on a
 * backend that breaks the rule it names; cross-process rules are tested with child processes
 * (test/store/contract-child.ts) that open the same store through the backend's module.
 */
export interface ContractBackend {
  /** A new, empty store; `spec` opens that same store again, here and in child processes. */
  fresh(): Promise<{ spec: string; cleanup(): Promise<void> }>;
  /** Opens the store `spec` names. `now`: the clock keyspace expiry is judged by; `openSecret`: how stored secrets are opened. */
  open(spec: string, options?: { now?: () => number; openSecret?: (value: string) => Secret }): Store;
  /** URL of a compiled module exporting `openContractStore(spec: string): Store`, for the children. */
  childModule: string;
}

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('./contract-child.js', import.meta.url));

function grantInput(access: string, refresh: string | undefined, at = 1_000): SourceRecordInput {
  return { grant: { accessToken: new Secret(access), ...(refresh ? { refreshToken: new Secret(refresh) } : {}), obtainedAt: at, expiresAt: at + 60_000 } };
}

export function runStoreContract(name: string, backend: ContractBackend): void {
  const children = async (spec: string, count: number, args: (i: number) => string[]): Promise<unknown[]> => {
    const outs = await Promise.all(
      Array.from({ length: count }, (_, i) => run(process.execPath, [CHILD, backend.childModule, spec, ...args(i)], { timeout: 60_000 })),
    );
    return outs.map((o) => JSON.parse(o.stdout.trim().split('\n').pop() as string) as unknown);
  };

  async function fresh(t: { after(fn: () => Promise<void>): void }): Promise<{ spec: string; store: Store }> {
    const f = await backend.fresh();
    const store = backend.open(f.spec);
    t.after(async () => {
      await store.close();
      await f.cleanup();
    });
    return { spec: f.spec, store };
  }

  test(`${name} contract: a write is compare-and-set on the version read; a stale one changes nothing`, async (t) => {
    const { store } = await fresh(t);
    const first = await writeRecord(store, 'a', grantInput('at-1', 'rt-1'), 0);
    assert.equal(first.version, 1);
    const second = await writeRecord(store, 'a', grantInput('at-2', 'rt-2'), 1);
    assert.equal(second.version, 2);
    await assert.rejects(writeRecord(store, 'a', grantInput('at-stale', 'rt-stale'), 1), (e: LatchkeyError) => e.code === 'LK_STORE_CONFLICT');
    await assert.rejects(writeRecord(store, 'b', grantInput('x', undefined), 3), (e: LatchkeyError) => e.code === 'LK_STORE_CONFLICT', 'a record that does not exist has version 0');
    await assert.rejects(store.withLock('a', (tx) => tx.remove('a', 1)), (e: LatchkeyError) => e.code === 'LK_STORE_CONFLICT');
    const back = await store.read('a');
    assert.equal(back?.version, 2);
    assert.equal(back?.grant?.accessToken.reveal(), 'at-2');
    assert.equal(await store.read('b'), undefined);
  });

  test(`${name} contract: the tx is bound to its lock (its key only, and only while the lock is held)`, async (t) => {
    const { store } = await fresh(t);
    await assert.rejects(store.withLock('a', (tx) => tx.write('b', grantInput('x', undefined), 0)));
    let kept: StoreTx | undefined;
    await store.withLock('a', async (tx) => {
      kept = tx;
    });
    await assert.rejects(kept!.write('a', grantInput('late', undefined), 0));
    assert.equal(await store.read('a'), undefined, 'nothing written by a misuse');
    assert.equal(await store.read('b'), undefined);
  });

  test(`${name} contract: the locked work is durable when withLock resolves (a fresh store sees it); a throw releases the lock`, async (t) => {
    const { spec, store } = await fresh(t);
    const result = await store.withLock('a', async (tx) => {
      const rec = await tx.read('a');
      return tx.write('a', grantInput('at-1', 'rt-1'), rec?.version ?? 0);
    });
    const other = backend.open(spec);
    t.after(() => other.close());
    const seen = await other.read('a');
    assert.equal(seen?.version, result.version);
    assert.equal(seen?.grant?.refreshToken?.reveal(), 'rt-1');
    await assert.rejects(
      store.withLock('a', async () => {
        throw new Error('work failed');
      }),
      /work failed/,
    );
    // Released: another holder gets the lock at once.
    assert.equal(await other.withLock('a', async () => 'got it', { timeoutMs: 2_000 }), 'got it');
  });

  test(`${name} contract: a wait for a held lock stops when its signal aborts (LK_LOCK_TIMEOUT, the work never runs); the holder goes on`, async (t) => {
    const { spec, store } = await fresh(t);
    const other = backend.open(spec);
    t.after(() => other.close());
    const holder = await holdLock(store, 'a', (tx) => tx.write('a', grantInput('at-holder', 'rt-holder'), 0));
    const stop = new AbortController();
    let ran = false;
    const waiter = other.withLock(
      'a',
      async () => {
        ran = true;
      },
      { timeoutMs: 30_000, signal: stop.signal },
    );
    setTimeout(() => stop.abort(), 150);
    const started = Date.now();
    await assert.rejects(waiter, (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'stopped at the abort, not at the lock timeout');
    assert.equal(ran, false, 'the work never ran');
    holder.release();
    await holder.done;
    assert.equal((await other.read('a'))?.grant?.accessToken.reveal(), 'at-holder', 'the holder finished its work');
    await assert.rejects(other.withLock('a', async () => undefined, { signal: AbortSignal.abort() }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT', 'already aborted: no wait at all');
  });

  test(`${name} contract: withLock serialises read-modify-write across processes (4 processes × 10 CAS increments, none refused)`, async (t) => {
    const { spec, store } = await fresh(t);
    const outs = await children(spec, 4, () => ['increment', 'counter', '10']);
    assert.deepEqual(outs, Array.from({ length: 4 }, () => ({ ok: true })));
    const rec = await store.read('counter');
    assert.equal(rec?.refreshCount, 40, 'no increment lost');
    assert.equal(rec?.version, 40, 'every write was a CAS on the version its holder read');
  });

  test(`${name} contract: listMeta opens no secret; a single-source read opens only its own`, async (t) => {
    const { spec, store } = await fresh(t);
    for (let i = 0; i < 50; i++) await writeRecord(store, `s${i}`, grantInput(`at-${i}`, `rt-${i}`, 5_000 + i), 0);
    await writeRecord(store, 'sess', { session: { cookies: { sid: new Secret('cookie') }, updatedAt: 7 } }, 0);
    const rec = (await store.read('s3'))!;
    await writeRecord(store, 's3', { ...grantInput('at-3', 'rt-3', 5_003), lastRefreshAt: 9, refreshCount: 2, lastFailure: { at: 10, kind: 'transient', message: 'boom' } }, rec.version);
    const opened: string[] = [];
    const counted = backend.open(spec, {
      openSecret: (value) => {
        opened.push(value);
        return new Secret(value);
      },
    });
    t.after(() => counted.close());
    const meta = await counted.listMeta();
    assert.deepEqual(opened, [], 'listMeta opened no secret');
    assert.equal(meta.size, 51);
    assert.deepEqual(meta.get('s3'), {
      version: 2,
      hasGrant: true,
      hasRefreshToken: true,
      obtainedAt: 5_003,
      expiresAt: 65_003,
      hasSession: false,
      lastRefreshAt: 9,
      refreshCount: 2,
      lastFailure: { at: 10, kind: 'transient', message: 'boom' },
    });
    assert.deepEqual(meta.get('sess'), { version: 1, hasGrant: false, hasRefreshToken: false, hasSession: true, sessionUpdatedAt: 7 });
    assert.ok(!JSON.stringify([...meta]).includes('at-3') && !JSON.stringify([...meta]).includes('cookie'), 'no secret in the metadata');
    const one = await counted.read('s7');
    assert.equal(one?.grant?.accessToken.reveal(), 'at-7');
    assert.deepEqual(opened.sort(), ['at-7', 'rt-7'], 'only the secrets of the record read were opened');
  });

  test(`${name} contract: keyspace entries expire, are swept, and can be deleted`, async (t) => {
    const { spec } = await fresh(t);
    let now = 1_000_000;
    const store = backend.open(spec, { now: () => now });
    t.after(() => store.close());
    await store.put('sessions', 'session-1', new Secret('v1'), 60_000);
    await store.put('successors', 'gen-1', new Secret('next'), 1_000);
    await store.put('tickets', 'ticket-1', new Secret('t1'), 1_000);
    assert.equal((await store.get('sessions', 'session-1'))?.reveal(), 'v1');
    assert.equal((await store.get('successors', 'gen-1'))?.reveal(), 'next');
    assert.equal(await store.get('sessions', 'gen-1'), undefined, 'keyspaces are separate');
    await store.put('sessions', 'session-1', new Secret('v2'), 60_000);
    assert.equal((await store.get('sessions', 'session-1'))?.reveal(), 'v2', 'put replaces');
    now += 1_000;
    assert.equal(await store.get('successors', 'gen-1'), undefined, 'expired: gone for readers at once');
    assert.equal(await store.consume('tickets', 'ticket-1'), undefined, 'an expired ticket cannot be consumed');
    await store.put('tickets', 'ticket-2', new Secret('t2'), 1_000);
    assert.equal(await store.sweep(), 1, 'the expired successor is swept (the expired ticket was taken by consume)');
    assert.equal((await store.get('sessions', 'session-1'))?.reveal(), 'v2', 'a live entry survives the sweep');
    assert.equal((await store.get('tickets', 'ticket-2'))?.reveal(), 't2');
    assert.equal(await store.delete('sessions', 'session-1'), true);
    assert.equal(await store.delete('sessions', 'session-1'), false);
    assert.equal(await store.get('sessions', 'session-1'), undefined);
    await assert.rejects(store.put('sessions', 'x', new Secret('v'), 0), (e: LatchkeyError) => e.code === 'LK_USAGE');
  });

  test(`${name} contract: keyspace entries read and written through a lock, only while it is held`, async (t) => {
    const { store } = await fresh(t);
    await store.put('sessions', 's-1', new Secret('gen-1'), 60_000);
    let leaked: StoreTx | undefined;
    const seen = await store.withLock('session:s-1', async (tx) => {
      leaked = tx;
      const before = (await tx.getEntry('sessions', 's-1'))?.reveal();
      await tx.putEntry('sessions', 's-1', new Secret('gen-2'), 60_000);
      await tx.putEntry('successors', 's-1#1', new Secret('gen-2'), 60_000);
      assert.equal(await tx.deleteEntry('tickets', 'none'), false);
      return before;
    });
    assert.equal(seen, 'gen-1');
    assert.equal((await store.get('sessions', 's-1'))?.reveal(), 'gen-2', 'durable when withLock resolved');
    assert.equal((await store.get('successors', 's-1#1'))?.reveal(), 'gen-2');
    await assert.rejects((leaked as StoreTx).putEntry('sessions', 's-1', new Secret('late'), 60_000));
    assert.equal((await store.get('sessions', 's-1'))?.reveal(), 'gen-2', 'a write after the lock changed nothing');
  });

  test(`${name} contract: consume is exactly-once across 6 concurrent processes`, async (t) => {
    const { spec, store } = await fresh(t);
    for (let round = 0; round < 3; round++) {
      await store.put('tickets', `ticket-${round}`, new Secret(`value-${round}`), 60_000);
      const startAt = Date.now() + 700;
      const outs = (await children(spec, 6, () => ['consume', 'tickets', `ticket-${round}`, String(startAt)])) as { got: string | null }[];
      const winners = outs.filter((o) => o.got !== null);
      assert.equal(winners.length, 1, `round ${round}: exactly one consumer got it (${JSON.stringify(outs)})`);
      assert.equal(winners[0]!.got, `value-${round}`);
      assert.equal(await store.consume('tickets', `ticket-${round}`), undefined, 'and it is gone');
    }
  });

  test(`${name} contract: the leader lock has one holder across processes`, async (t) => {
    const { spec, store } = await fresh(t);
    const lock = await store.leaderLock({ heartbeatMs: 60_000 });
    const [refused] = (await children(spec, 1, () => ['leader'])) as { leader: boolean; code?: string }[];
    assert.deepEqual(refused, { leader: false, code: 'LK_KEEPER' });
    await lock.release();
    const [taken] = (await children(spec, 1, () => ['leader'])) as { leader: boolean }[];
    assert.deepEqual(taken, { leader: true });
  });

  test(`${name} contract: a rotation is handed out only after withLock resolved (never from inside the lock)`, async (t) => {
    const { store } = await fresh(t);
    const clock = new TestClock();
    const minted = await idp.mintGrant();
    const now = clock.now();
    await writeRecord(store, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token!), obtainedAt: now - 60_000, expiresAt: now - 1 } }, 0);
    const events: EngineEvent[] = [];
    const probes: { settled: boolean; events: number }[] = [];
    const late: { engine?: TokenEngine } = {};
    // A backend's commit happens when withLock's work is over: probe just before that moment.
    const probing = new (class extends DelegatingStore {
      override withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>): Promise<T> {
        return this.inner.withLock(key, async (tx) => {
          const result = await fn(tx);
          let settled = false;
          void late.engine!.token('s').then(() => {
            settled = true;
          });
          for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
          probes.push({ settled, events: events.length });
          return result;
        });
      }
    })(store);
    const engine = new TokenEngine({ store: probing, clock, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }), onEvent: (e) => events.push(e) });
    late.engine = engine;
    const token = await engine.token('s');
    assert.notEqual(token, minted.access_token, 'it refreshed');
    assert.deepEqual(probes, [{ settled: false, events: 0 }], 'inside the lock, nobody got the new token and no event was out');
    assert.deepEqual(events.map((e) => e.outcome), ['refreshed']);
    assert.equal((await store.read('s'))?.grant?.accessToken.reveal(), token);
  });

  let idp: Idp;
  before(async () => {
    idp = await startIdp({ accessTokenTtl: 60 });
  });
  after(async () => {
    await idp?.close();
  });
}
