/**
 * One Latchkey worker process of the fleet stampede bench: opens Latchkey on its machine's
 * LATCHKEY_HOME with the shared PostgreSQL store (LATCHKEY_STORE and LATCHKEY_MASTER_KEY come
 * from this process's environment, never from argv: a process title is public) and runs the
 * common load with `lk.token(source)`, timing the calls that were not memo hits.
 *
 *   node fleet-stampede-worker.js --home DIR --source NAME --url PROTECTED_URL --callers N --start-at MS --deadline MS
 */
import { pgStoreCounters } from '../src/store/pg/pg-store.js';
import { openFleetLatchkey } from './lib/fleet-store.js';
import { parseWorkerArgs, required, runLoad } from './lib/load.js';
import { timedTokens } from './lib/token-waits.js';

const args = parseWorkerArgs(process.argv.slice(2));
const source = required(args, 'source');
const outcomes: Record<string, number> = {};
const env: NodeJS.ProcessEnv = {};
for (const name of ['LATCHKEY_STORE', 'LATCHKEY_MASTER_KEY']) if (process.env[name] !== undefined) env[name] = process.env[name];
const lk = await openFleetLatchkey(required(args, 'home'), env, {
  onRefresh: (e) => {
    const k = `refresh_${e.outcome}`;
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  },
});
const timed = timedTokens(() => lk.token(source));
const counts = await runLoad({
  callers: Number(required(args, 'callers')),
  protectedUrl: required(args, 'url'),
  startAt: Number(required(args, 'start-at')),
  deadline: Number(required(args, 'deadline')),
  getToken: timed.getToken,
  extra: outcomes,
});
await lk.close();
for (const [k, v] of Object.entries(pgStoreCounters)) outcomes[`pg_${k}`] = v;
process.stdout.write(`${JSON.stringify({ ...counts, waits: timed.waits(), storeKind: lk.store.constructor.name })}\n`);
