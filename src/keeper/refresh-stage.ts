import { LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { Latchkey } from '../latchkey.js';
import type { SourceRecord } from '../store/store.js';
import { refreshAheadReason, type RefreshReason } from './scheduler.js';

/**
 * The keeper's "refresh" stage: refresh-ahead for OAuth grants — at ⅔ of the access token's
 * lifetime, and at least daily so an idle rotating refresh token never ages out. The refresh
 * itself is the engine's (`refreshNow`: under the source's lock, persisted before use, reuse
 * detection never tripped); this stage decides *when*, and reads back what happened.
 */
export type RefreshStageResult =
  /** The source has no OAuth grant to keep alive (token/session source, or oauth not first). */
  | { kind: 'none' }
  | { kind: 'not_due' }
  | { kind: 'refreshed'; reason: RefreshReason }
  /** Someone else (another process) rotated it meanwhile; we adopted theirs. */
  | { kind: 'adopted'; reason: RefreshReason }
  /** Network, 5xx, timeout: the engine failed open and keeps serving the current token. */
  | { kind: 'transient'; reason: RefreshReason; message: string }
  /** The IdP refused the grant (invalid_grant) or it was already marked revoked. */
  | { kind: 'revoked'; message: string }
  /** A failure a person must fix (invalid_client, missing client secret, no grant). */
  | { kind: 'action'; operatorAction: OperatorAction; message: string };

/**
 * `dueAt`: the keeper's refresh timer woke for this grant at its due time; judge "due" as of
 * then, so a timer that fires a millisecond early (wall and monotonic clocks differ) still refreshes.
 */
export async function refreshAhead(
  lk: Latchkey,
  source: string,
  force = false,
  dueAt?: number,
  /** The record as the cycle's one store listing saw it (saves a read of the whole store per source). */
  listed?: { record: SourceRecord | undefined },
): Promise<RefreshStageResult> {
  const src = lk.config.sources.get(source);
  if (!src?.methods.includes('oauth')) return { kind: 'none' };
  const rec = listed ? listed.record : await lk.store.read(source);
  const g = rec?.grant;
  if (!g) return { kind: 'none' };
  if (g.revoked) {
    return { kind: 'revoked', message: `the grant was revoked (${g.revoked.reason}) on ${new Date(g.revoked.at).toISOString()}` };
  }
  const started = lk.clock.now();
  const reason = force && g.refreshToken ? ('daily' as const) : refreshAheadReason(rec, Math.max(started, dueAt ?? started));
  if (!reason) return { kind: 'not_due' };
  try {
    await lk.engine.refreshNow(source);
  } catch (err) {
    if (err instanceof LatchkeyError) {
      if (err.code === 'LK_GRANT_REVOKED') return { kind: 'revoked', message: err.message };
      if (err.operatorAction) return { kind: 'action', operatorAction: err.operatorAction, message: err.message };
      return { kind: 'transient', reason, message: err.message };
    }
    return { kind: 'transient', reason, message: (err as Error)?.message ?? String(err) };
  }
  // refreshNow fails open (it answers the current token on a transient failure): the store says
  // what really happened.
  const after = await lk.store.read(source);
  if (after?.lastRefreshAt !== undefined && after.lastRefreshAt >= started) return { kind: 'refreshed', reason };
  const f = after?.lastFailure;
  if (f && f.at >= started) {
    if (f.kind === 'rejected') return { kind: 'action', operatorAction: 'fix_config', message: `the IdP rejected the refresh: ${f.message}` };
    if (f.kind === 'invalid_grant') return { kind: 'revoked', message: f.message };
    return { kind: 'transient', reason, message: f.message };
  }
  return { kind: 'adopted', reason };
}
