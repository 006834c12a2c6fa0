// Child process for the PostgreSQL fault tests (test/e2e/pg-faults.test.ts): one process that
// refreshes source "s" through a PgStore, the way `latchkey token` does (TokenEngine over the
// rotation core), then saves any held grant (engine.flush, as lk.close does) and exits.
//   node pg-refresher.js '<json: { url, tokenEndpoint, leaseMs?, statementTimeoutMs?, lockTimeoutMs?, persistRetryDelaysMs? }>'
// Prints JSON lines: {"ready":pid}, one {"event":…} per engine event, {"token":…} or {"error":…}, {"unsaved":…}, {"closed":true}.
import { systemClock } from '../../src/core/clock.js';
import { TokenEngine } from '../../src/engine/fresh-token.js';
import { openPgStore } from '../fixtures/pg.js';

const opts = JSON.parse(process.argv[2]!) as {
  url: string;
  tokenEndpoint: string;
  leaseMs?: number;
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  persistRetryDelaysMs?: number[];
};
const out = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v)}\n`);
const store = openPgStore(opts.url, {
  ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
  timeouts: { ...(opts.statementTimeoutMs ? { statementTimeoutMs: opts.statementTimeoutMs } : {}), ...(opts.lockTimeoutMs ? { lockTimeoutMs: opts.lockTimeoutMs } : {}) },
});
const engine = new TokenEngine({
  store,
  clock: systemClock,
  fetch: (i, init) => fetch(i, init),
  settings: async () => ({ tokenEndpoint: opts.tokenEndpoint, clientId: 'public-client' }),
  onEvent: (e) => out({ event: { outcome: e.outcome, message: e.message } }),
  ...(opts.persistRetryDelaysMs ? { persistRetryDelaysMs: opts.persistRetryDelaysMs } : {}),
});
out({ ready: process.pid });
try {
  out({ token: await engine.token('s') });
} catch (err) {
  out({ error: { code: (err as { code?: string }).code, message: (err as Error).message } });
}
out({ unsaved: engine.unsaved('s')?.reason ?? null });
await engine.flush();
out({ unsavedAfterFlush: engine.unsaved('s')?.reason ?? null });
await store.close();
out({ closed: true });
