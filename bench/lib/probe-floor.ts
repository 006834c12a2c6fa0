/**
 * The floor for the keeper's CPU per probe: a bare loop doing the keeper's requests (same
 * URLs, same Authorization header, same concurrency and timeout), reading each answer's body,
 * and nothing else. Run as its own process so that its CPU time is its own (the bench process
 * also runs the API server):
 *
 *   node probe-floor.js <fetch|http> <baseUrl> <count> <concurrency> <timeoutMs> <token>
 *
 * `fetch` is Node's built-in fetch (undici); `http` is node:http `request` on a keep-alive
 * Agent. Prints one JSON line: {"transport", "requests", "cpu_ms", "wall_ms", "statuses"}.
 * CPU is counted from the first request to the last answer (not the process's start-up).
 */
import { Agent, request } from 'node:http';

const [transport, base, countArg, concurrencyArg, timeoutArg, token] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const timeoutMs = Number(timeoutArg);
const headers = { authorization: `Bearer ${token}`, accept: 'application/json, */*;q=0.5' };
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

function viaFetch(url: string): Promise<number> {
  return fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) }).then(
    async (res) => {
      await res.arrayBuffer();
      return res.status;
    },
    () => 0,
  );
}

function viaHttp(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers, agent, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function main(): Promise<void> {
  const send = transport === 'fetch' ? viaFetch : viaHttp;
  const statuses: Record<string, number> = {};
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const status = await send(`${base}/s/${i}`);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ transport, requests: count, cpu_ms: (cpu.user + cpu.system) / 1000, wall_ms: performance.now() - t0, statuses })}\n`);
  agent.destroy();
}

void main();
