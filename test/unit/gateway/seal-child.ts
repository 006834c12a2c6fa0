// Child of seal.test.ts: loads (or creates) the key under argv[2] and prints a value sealed with
// it, which the parent opens with the key it reads afterwards.
import { loadOrCreateKeyFile } from '../../../src/gateway/seal.js';

const key = await loadOrCreateKeyFile(process.argv[2] as string);
// A deterministic probe would need the key itself; the parent opens this one instead.
process.stdout.write(`${key.seal('same', 'probe')}\n`);
