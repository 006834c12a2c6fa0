// Child process for the multi-process stampede test: C concurrent callers for D ms, each
// taking a token and using it on the protected endpoint. Prints one JSON line of counts.
import { openLatchkey } from '../../src/latchkey.js';

const [home, protectedUrl, callersArg, durationArg] = process.argv.slice(2);
const callers = Number(callersArg);
const deadline = Date.now() + Number(durationArg);
const lk = await openLatchkey({ home: home!, env: {} });
let ok = 0;
let unauthorized = 0;
let errors = 0;
const messages = new Set<string>();
async function caller(): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const token = await lk.token('idp');
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
await Promise.all(Array.from({ length: callers }, caller));
process.stdout.write(`${JSON.stringify({ ok, unauthorized, errors, messages: [...messages].slice(0, 3) })}\n`);
