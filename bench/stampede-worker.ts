/**
 * One Latchkey worker process of the stampede bench: opens Latchkey on the shared
 * LATCHKEY_HOME and runs the common load (lib/load.ts) with `lk.token(source)`.
 * Prints one JSON line (LoadCounts) on stdout when the deadline has passed.
 *
 *   node stampede-worker.js --home DIR --source NAME --url PROTECTED_URL --callers N --start-at MS --deadline MS
 */
import { openLatchkey } from '../src/index.js';
import { parseWorkerArgs, required, runLoad } from './lib/load.js';

const args = parseWorkerArgs(process.argv.slice(2));
const source = required(args, 'source');
const outcomes: Record<string, number> = {};
const lk = await openLatchkey({
  home: required(args, 'home'),
  env: {},
  onRefresh: (e) => {
    const k = `refresh_${e.outcome}`;
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  },
});
const counts = await runLoad({
  callers: Number(required(args, 'callers')),
  protectedUrl: required(args, 'url'),
  startAt: Number(required(args, 'start-at')),
  deadline: Number(required(args, 'deadline')),
  getToken: () => lk.token(source),
  extra: outcomes,
});
await lk.close();
process.stdout.write(`${JSON.stringify(counts)}\n`);
