// Child process for the PostgreSQL key-rotation test: C callers for D ms, each taking a token of
// one of the sources (round robin) from a PostgreSQL store and using it on the protected endpoint.
// The store URL and keys come from the environment (LATCHKEY_STORE, LATCHKEY_MASTER_KEY,
// LATCHKEY_MASTER_KEY_OTHER). Prints one JSON line of counts.
import { openLatchkey } from '../../src/latchkey.js';
import { masterKeyringFromEnv } from '../../src/store/pg/master-keyring.js';
import { PgStore } from '../../src/store/pg/pg-store.js';

const [home, protectedUrl, sourcesArg, callersArg, durationArg] = process.argv.slice(2);
const sources = sourcesArg!.split(',');
const env = process.env;
const store = new PgStore({ url: env.LATCHKEY_STORE!, env, masterKey: () => masterKeyringFromEnv(env) });
const lk = await openLatchkey({ home: home!, env: {}, store });
const deadline = Date.now() + Number(durationArg);
let ok = 0;
let unauthorized = 0;
let errors = 0;
const messages = new Set<string>();
async function caller(n: number): Promise<void> {
  for (let i = n; Date.now() < deadline; i++) {
    try {
      const token = await lk.token(sources[i % sources.length]!);
      const res = await fetch(protectedUrl!, { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      if (res.status === 200) ok++;
      else unauthorized++;
    } catch (err) {
      errors++;
      messages.add((err as Error).message);
    }
  }
}
await Promise.all(Array.from({ length: Number(callersArg) }, (_, n) => caller(n)));
await lk.close();
process.stdout.write(`${JSON.stringify({ ok, unauthorized, errors, messages: [...messages].slice(0, 3) })}\n`);
