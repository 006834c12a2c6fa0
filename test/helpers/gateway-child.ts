/**
 * A gateway in its own process, for the cross-process tests (burst, tickets): started with the
 * JSON options in argv[2]; its clock is the wall clock plus the offset (ms) in the file
 * `clockFile` when given, so a test moves time for every gateway at once without sleeping.
 * Prints the gateway's ready line on stdout; SIGTERM closes it.
 */
import { readFileSync } from 'node:fs';
import { startGateway, type StartGatewayOptions } from '../../src/gateway/server.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as StartGatewayOptions & { clockFile?: string };
const clockFile = opts.clockFile;
function offset(): number {
  if (!clockFile) return 0;
  try {
    return Number(readFileSync(clockFile, 'utf8')) || 0;
  } catch {
    return 0;
  }
}
const running = await startGateway({ ...opts, clock: { now: () => Date.now() + offset() }, log: (level, event, fields) => process.stderr.write(`${JSON.stringify({ level, event, ...fields })}\n`) });
process.stdout.write(`latchkey gateway listening on ${running.url}\n`);
process.on('SIGTERM', () => {
  void running.close().then(() => process.exit(0));
});
