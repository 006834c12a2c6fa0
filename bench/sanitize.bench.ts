/**
 * The sanitizer's secret index at keeper scale: every source holds an access token, a refresh
 * token and a client secret (opaque 43-character tokens, or 800-character JWT-sized access
 * tokens), all registered by being held in `Secret`s, then remote texts of 200+ characters are
 * sanitized. Each scenario runs in a fresh process (the registry is process-wide).
 *
 * Figures per scenario (`<sources>_<kind>`):
 * - `index_mb_*`: heap + array buffers added by building the index (after GC);
 * - `build_ms_*`: the first search, which indexes every registered value;
 * - `sanitize_us_*`: one 250-character text with a secret in it, once the index is built
 *   (limit 200 µs: a keeper with every source failing sanitizes a few texts per source per cycle).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { note, reporter } from './lib/report.js';

const BENCH = 'sanitize';
const SANITIZE_LIMIT_US = 200;

interface Result {
  indexMb: number;
  buildMs: number;
  sanitizeUs: number;
  redacted: boolean;
}

async function child(sources: number, accessTokenLength: number): Promise<Result> {
  const { Secret } = await import('../src/core/secret.js');
  const { sanitizeRemoteText } = await import('../src/core/sanitize.js');
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  const token = (length: number): string => randomBytes(Math.ceil((length * 3) / 4)).toString('base64url').slice(0, length);
  const held = [];
  for (let i = 0; i < sources; i++) held.push(new Secret(token(43)), new Secret(token(accessTokenLength)), new Secret(token(40)));
  gc();
  const before = process.memoryUsage();
  let t = performance.now();
  sanitizeRemoteText('the first search indexes every registered value');
  const buildMs = performance.now() - t;
  gc();
  const after = process.memoryUsage();
  const text = `invalid_grant: ${'x'.repeat(150)} ${held[held.length - 2]!.reveal().slice(0, 60)} was refused by the server at the end of it`;
  const rounds = 20_000;
  let out = '';
  t = performance.now();
  for (let i = 0; i < rounds; i++) out = sanitizeRemoteText(text);
  const sanitizeUs = ((performance.now() - t) * 1000) / rounds;
  const indexMb = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 1e6;
  return { indexMb, buildMs, sanitizeUs, redacted: out.includes('[redacted]') && held.length > 0 };
}

if (process.argv[2] === '--child') {
  const r = await child(Number(process.argv[3]), Number(process.argv[4]));
  process.stdout.write(`${JSON.stringify(r)}\n`);
} else {
  const out = reporter(BENCH);
  try {
    for (const [sources, length, kind] of [
      [1000, 43, 'opaque'],
      [1000, 800, 'jwt'],
      [10_000, 43, 'opaque'],
      [10_000, 800, 'jwt'],
    ] as const) {
      const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', String(sources), String(length)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`scenario ${sources} ${kind}: ${r.stderr}`);
      const res = JSON.parse(r.stdout) as Result;
      if (!res.redacted) throw new Error(`scenario ${sources} ${kind}: the secret was not redacted`);
      const name = `${sources}_${kind}`;
      const extra = { sources, secrets: sources * 3, access_token_chars: length };
      out({ figure: `index_mb_${name}`, value: res.indexMb, unit: 'MB', subject: 'latchkey', extra });
      out({ figure: `build_ms_${name}`, value: res.buildMs, unit: 'ms', subject: 'latchkey', extra });
      out({ figure: `sanitize_us_${name}`, value: res.sanitizeUs, limit: SANITIZE_LIMIT_US, unit: 'µs', subject: 'latchkey', extra });
    }
  } catch (err) {
    note(`sanitize could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
}
