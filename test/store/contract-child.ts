// Child process of the store contract suite (test/store/contract.ts): opens the store under test
// through the backend's module and does one thing to it, printing one JSON line.
//   node contract-child.js <module URL> <spec> increment <key> <times>
//   node contract-child.js <module URL> <spec> consume <keyspace> <id> <start at (ms epoch)>
//   node contract-child.js <module URL> <spec> leader
import type { Keyspace, Store } from '../../src/store/store.js';

const [moduleUrl, spec, op, ...args] = process.argv.slice(2);
if (!moduleUrl || spec === undefined || !op) throw new Error('usage: contract-child <module> <spec> <op> ...');
const { openContractStore } = (await import(moduleUrl)) as { openContractStore(spec: string): Store };
const store = openContractStore(spec);

function out(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

if (op === 'increment') {
  // Read-modify-write under the lock, CAS on the version read: without mutual exclusion across
  // processes, two of these would read the same version and one write would be refused.
  const [key, times] = args as [string, string];
  for (let i = 0; i < Number(times); i++) {
    await store.withLock(key, async (tx) => {
      const rec = await tx.read(key);
      const { version = 0, ...rest } = rec ?? {};
      await tx.write(key, { ...rest, refreshCount: (rec?.refreshCount ?? 0) + 1 }, version);
    });
  }
  out({ ok: true });
} else if (op === 'consume') {
  const [keyspace, id, startAt] = args as [Keyspace, string, string];
  // Start together: each child spins until the same instant, so the consumes really race.
  while (Date.now() < Number(startAt)) {
    /* spin */
  }
  const got = await store.consume(keyspace, id);
  out({ got: got === undefined ? null : got.reveal() });
} else if (op === 'leader') {
  try {
    const lock = await store.leaderLock({ heartbeatMs: 60_000 });
    out({ leader: true });
    await lock.release();
  } catch (err) {
    out({ leader: false, code: (err as { code?: string }).code });
  }
} else {
  throw new Error(`unknown op ${op}`);
}
await store.close();
