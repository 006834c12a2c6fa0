/**
 * One "keeper" of the fleet throughput bench: the keeper's refresh stage (`refreshAhead`, the
 * engine's refresh under the source's claim) over due work picked from the shared PostgreSQL
 * store with FOR UPDATE SKIP LOCKED (src/store/pg/due-work.ts), at the keeper's default
 * concurrency (32), until nothing is due. LATCHKEY_STORE and LATCHKEY_MASTER_KEY come from the
 * environment. Prints one JSON line: outcomes, and when the last refresh ended.
 *
 *   node fleet-keeper-worker.js --home DIR --start-at MS --concurrency N --batch N
 */
import { refreshAhead } from '../src/keeper/refresh-stage.js';
import { PgDueWork } from '../src/store/pg/due-work.js';
import { pgStoreCounters, PgStore } from '../src/store/pg/pg-store.js';
import { openLatchkey } from '../src/index.js';
import { parseWorkerArgs, required, sleep } from './lib/load.js';

const args = parseWorkerArgs(process.argv.slice(2));
const env: NodeJS.ProcessEnv = { LATCHKEY_STORE: process.env.LATCHKEY_STORE, LATCHKEY_MASTER_KEY: process.env.LATCHKEY_MASTER_KEY };
const store = new PgStore({ url: env.LATCHKEY_STORE!, env, poolSize: Number(process.env.LATCHKEY_BENCH_POOL ?? 16) });
const lk = await openLatchkey({ home: required(args, 'home'), env, store });
const due = new PgDueWork(store.target);
const concurrency = Number(required(args, 'concurrency'));
const batch = Number(required(args, 'batch'));
const outcomes: Record<string, number> = {};
let lastDoneAt = 0;
let firstStartAt = 0;
await sleep(Number(required(args, 'start-at')) - Date.now());
firstStartAt = Date.now();
const queue: string[] = [];
let picking: Promise<void> | undefined;
let exhausted = false;
async function refill(): Promise<void> {
  const names = await due.pick(batch);
  if (names.length === 0) exhausted = true;
  queue.push(...names);
}
async function lane(): Promise<void> {
  for (;;) {
    if (queue.length === 0) {
      if (exhausted) return;
      picking ??= refill().finally(() => (picking = undefined));
      await picking;
      continue;
    }
    const name = queue.shift()!;
    const r = await refreshAhead(lk, name);
    outcomes[r.kind] = (outcomes[r.kind] ?? 0) + 1;
    lastDoneAt = Date.now();
    await due.done([name]);
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
await due.close();
await lk.close();
process.stdout.write(`${JSON.stringify({ pid: process.pid, firstStartAt, lastDoneAt, outcomes, pg: pgStoreCounters })}\n`);
