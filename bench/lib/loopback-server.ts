/**
 * A loopback HTTP API in its own process, so that the measured process does only the client's
 * work. Routes: `/ok` (200 for an accepted bearer token, else 401), `/stall` (never answers),
 * anything else 404. Accepted tokens: every token that starts with `good`.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const SERVER = `
import { createServer } from 'node:http';
const body = '{"ok":true}';
const s = createServer((req, res) => {
  if (req.url === '/stall') return;
  const auth = req.headers.authorization || '';
  if (req.url === '/ok') {
    if (auth.startsWith('Bearer good')) { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' }); res.end(body); }
    else { res.writeHead(401, { 'content-length': '0' }); res.end(); }
    return;
  }
  res.writeHead(404, { 'content-length': '0' }); res.end();
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));
process.on('SIGTERM', () => { s.closeAllConnections(); s.close(() => process.exit(0)); });
`;

export interface LoopbackServer {
  origin: string;
  close(): Promise<void>;
}

export async function startLoopbackServer(): Promise<LoopbackServer> {
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('loopback server did not start')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => reject(new Error(`loopback server exited with ${code}`)));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
