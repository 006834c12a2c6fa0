import { LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { Latchkey } from '../latchkey.js';
import { metaOf, type SourceMeta } from '../store/store.js';
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

/** A refresh-stage result and, when the store was read back after a refresh, what it holds now. */
export type RefreshOutcome = RefreshStageResult & {
  /**
   * The source's metadata as this call last read it (after a refresh: the new expiry, the new
   * credential stamp). Absent when it read nothing (a listing was given and no refresh was made,
   * or the refresh threw).
   */
  after?: SourceMeta | undefined;
};

/**
 * `dueAt`: the keeper's refresh timer woke for this grant at its due time; judge "due" as of
 * then, so a timer that fires a millisecond early (wall and monotonic clocks differ) still refreshes.
 *
 * Store reads (issue 9, one per need): none to decide when `listed` (the cycle's one metadata
 * listing) is given, else one of this source; one after a refresh, to tell what happened (its
 * metadata is handed back in `after`, so the caller need not read again).
 */
export async function refreshAhead(
  lk: Latchkey,
  source: string,
  force = false,
  dueAt?: number,
  /** The source's metadata as the cycle's one listing saw it (`store.listMeta()`: no secret read). */
  listed?: { meta: SourceMeta | undefined },
): Promise<RefreshOutcome> {
  const src = lk.config.sources.get(source);
  if (!src?.methods.includes('oauth')) return { kind: 'none' };
  let meta: SourceMeta | undefined;
  if (listed) meta = listed.meta;
  else {
    const rec = await lk.store.read(source);
    meta = rec && metaOf(rec);
  }
  // What this call read itself is handed back too (the caller plans the next refresh from it).
  const known = listed ? {} : { after: meta };
  if (!meta?.hasGrant) return { kind: 'none', ...known };
  if (meta.revoked) {
    return { kind: 'revoked', message: `the grant was revoked (${meta.revoked.reason}) on ${new Date(meta.revoked.at).toISOString()}`, ...known };
  }
  const started = lk.clock.now();
  const reason = force && meta.hasRefreshToken ? ('daily' as const) : refreshAheadReason(meta, Math.max(started, dueAt ?? started));
  if (!reason) return { kind: 'not_due', ...known };
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
  const read = await lk.store.read(source);
  const after = read && metaOf(read);
  if (after?.lastRefreshAt !== undefined && after.lastRefreshAt >= started) return { kind: 'refreshed', reason, after };
  const f = after?.lastFailure;
  if (f && f.at >= started) {
    if (f.kind === 'rejected') return { kind: 'action', operatorAction: 'fix_config', message: `the IdP rejected the refresh: ${f.message}`, after };
    if (f.kind === 'invalid_grant') return { kind: 'revoked', message: f.message, after };
    return { kind: 'transient', reason, message: f.message, after };
  }
  return { kind: 'adopted', reason, after };
}
