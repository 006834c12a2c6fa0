// Child process: takes a lock file and holds it until killed.
import { acquireLockFile } from '../../src/store/lock-file.js';

const path = process.argv[2];
if (!path) throw new Error('usage: lock-holder <path>');
await acquireLockFile(path, { staleMs: 60_000, timeoutMs: 10_000 });
process.stdout.write('locked\n');
setInterval(() => undefined, 1 << 30);
