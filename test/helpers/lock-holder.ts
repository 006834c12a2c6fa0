// Child process: takes a lock file and holds it until killed. Optional argv[3]: staleMs.
import { acquireLockFile } from '../../src/store/lock-file.js';

const path = process.argv[2];
if (!path) throw new Error('usage: lock-holder <path> [staleMs]');
await acquireLockFile(path, { staleMs: Number(process.argv[3] ?? 60_000), timeoutMs: 10_000 });
process.stdout.write('locked\n');
setInterval(() => undefined, 1 << 30);
