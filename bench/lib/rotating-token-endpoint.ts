/**
 * A loopback token endpoint with refresh-token rotation and reuse detection, for the throughput
 * bench (10,000 grants: minting them through oidc-provider's login flow would take minutes on 2
 * cores, and its CPU, not the store, would be what the figure measured). RFC 6749 §6 as
 * oidc-provider answers it: a refresh token is good once; presenting a consumed one is a replay
 * (counted) and revokes its whole chain (every later refresh of that grant is refused).
 *
 * A refresh token it has never seen is accepted as the first of a new grant (the bench seeds
 * the store with `rt-<n>` and never tells the endpoint).
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RotatingTokenEndpoint {
  url: string;
  stats: { refreshes: number; replays: number; revokedGrants: number; refused: number };
  close(): Promise<void>;
}

export async function startRotatingTokenEndpoint(opts: { latencyMs: number; expiresIn: number }): Promise<RotatingTokenEndpoint> {
  /** refresh token → its grant id; consumed ones stay, marked. */
  const tokens = new Map<string, { grant: number; consumed: boolean }>();
  const revoked = new Set<number>();
  let grants = 0;
  const stats = { refreshes: 0, replays: 0, revokedGrants: 0, refused: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      setTimeout(() => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const answer = (status: number, body: unknown): void => {
          const text = JSON.stringify(body);
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
          res.end(text);
        };
        const rt = form.get('refresh_token');
        if (req.method !== 'POST' || form.get('grant_type') !== 'refresh_token' || rt === null) return answer(400, { error: 'invalid_request' });
        stats.refreshes++;
        let t = tokens.get(rt);
        if (t === undefined) {
          t = { grant: ++grants, consumed: false };
          tokens.set(rt, t);
        }
        if (t.consumed) {
          stats.replays++;
          if (!revoked.has(t.grant)) {
            revoked.add(t.grant);
            stats.revokedGrants++;
          }
        }
        if (t.consumed || revoked.has(t.grant)) {
          stats.refused++;
          return answer(400, { error: 'invalid_grant' });
        }
        t.consumed = true;
        const next = randomBytes(16).toString('hex');
        tokens.set(next, { grant: t.grant, consumed: false });
        answer(200, { access_token: randomBytes(16).toString('hex'), refresh_token: next, token_type: 'Bearer', expires_in: opts.expiresIn });
      }, opts.latencyMs);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    stats,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
