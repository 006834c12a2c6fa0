/**
 * One peer worker process of the stampede bench: what most projects do with a rotating
 * grant. `openid-client` (v6) refreshes; the tokens live in a JSON file shared by every
 * process; coordination is in-process only:
 *
 * - a memo per process; when it is due, ONE flight per process (a promise shared by that
 *   process's callers) reads the JSON file; if the file holds a token that is still fresh
 *   (another process refreshed), it is used; otherwise the flight calls
 *   `client.refreshTokenGrant(config, refreshToken)` and writes the file back with a plain
 *   `writeFile` (not atomic, no lock);
 * - on a failed refresh (e.g. `invalid_grant` after another process rotated the same refresh
 *   token), the flight re-reads the file and uses the new token if another process wrote
 *   one; otherwise the call fails, and the next call tries again (after 250 ms, so a dead
 *   grant is not hammered in a busy loop).
 *
 * The peer gets Latchkey's own expiry arithmetic (expiry counted from the request start minus
 * the 1 s granularity of `expires_in`, refresh at expiry - min(120 s, lifetime / 3)), so the
 * comparison isolates coordination, not timing.
 *
 *   node stampede-peer-worker.js --file TOKENS.json --issuer URL --url PROTECTED_URL --callers N --start-at MS --deadline MS
 */
import { readFile, writeFile } from 'node:fs/promises';
import * as client from 'openid-client';
import { expiresAtFrom, refreshDueAt } from '../src/engine/fresh-token.js';
import { parseWorkerArgs, required, runLoad, sleep } from './lib/load.js';

/** The shared token file (snake_case, as such files usually are). */
export interface PeerTokenFile {
  access_token: string;
  refresh_token: string;
  /** epoch ms */
  expires_at: number;
  /** epoch ms */
  obtained_at: number;
}

const args = parseWorkerArgs(process.argv.slice(2));
const file = required(args, 'file');
const extra: Record<string, number> = {
  refresh_calls: 0,
  refresh_ok: 0,
  refresh_failed: 0,
  refresh_invalid_grant: 0,
  adopted_from_file: 0,
  adopted_after_failure: 0,
  file_read_errors: 0,
};

const config = await client.discovery(new URL(required(args, 'issuer')), 'public-client', undefined, client.None(), {
  execute: [client.allowInsecureRequests],
});

function due(t: PeerTokenFile): number {
  return refreshDueAt({ obtainedAt: t.obtained_at, expiresAt: t.expires_at });
}

/** Reads the shared file; a torn read (another process mid-writeFile) is retried a few times. */
async function readTokens(): Promise<PeerTokenFile> {
  let lastErr: unknown;
  for (let i = 0; i < 5; i++) {
    try {
      const t = JSON.parse(await readFile(file, 'utf8')) as PeerTokenFile;
      if (typeof t.access_token === 'string' && typeof t.refresh_token === 'string') return t;
      lastErr = new Error('token file without tokens');
    } catch (err) {
      lastErr = err;
    }
    extra.file_read_errors = (extra.file_read_errors ?? 0) + 1;
    await sleep(5);
  }
  throw lastErr;
}

function bump(key: string): void {
  extra[key] = (extra[key] ?? 0) + 1;
}

let memo: PeerTokenFile | undefined;
let flight: Promise<PeerTokenFile> | undefined;

async function refreshFlight(): Promise<PeerTokenFile> {
  const current = await readTokens();
  if (Date.now() < due(current)) {
    if (memo?.access_token !== current.access_token) bump('adopted_from_file');
    memo = current;
    return current;
  }
  const requestedAt = Date.now();
  bump('refresh_calls');
  try {
    const res = await client.refreshTokenGrant(config, current.refresh_token);
    const next: PeerTokenFile = {
      access_token: res.access_token,
      refresh_token: res.refresh_token ?? current.refresh_token,
      expires_at: expiresAtFrom(requestedAt, res.expires_in ?? 60),
      obtained_at: requestedAt,
    };
    await writeFile(file, JSON.stringify(next));
    bump('refresh_ok');
    memo = next;
    return next;
  } catch (err) {
    bump('refresh_failed');
    if (err instanceof client.ResponseBodyError && err.error === 'invalid_grant') bump('refresh_invalid_grant');
    const again = await readTokens().catch(() => undefined);
    if (again && again.refresh_token !== current.refresh_token) {
      bump('adopted_after_failure');
      memo = again;
      return again;
    }
    await sleep(250);
    throw err;
  }
}

function getToken(): Promise<string> {
  const m = memo;
  if (m !== undefined && Date.now() < due(m)) return Promise.resolve(m.access_token);
  flight ??= refreshFlight().finally(() => {
    flight = undefined;
  });
  return flight.then((t) => t.access_token);
}

const counts = await runLoad({
  callers: Number(required(args, 'callers')),
  protectedUrl: required(args, 'url'),
  startAt: Number(required(args, 'start-at')),
  deadline: Number(required(args, 'deadline')),
  getToken,
  extra,
});
process.stdout.write(`${JSON.stringify(counts)}\n`);
