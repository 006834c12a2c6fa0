import type { ProbeResult } from '../client/probe-types.js';
import { LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { Latchkey } from '../latchkey.js';
import { callDeadline } from '../core/deadline.js';

/**
 * The keeper's "keep warm" stage for browser sessions. A session whose probe went through it
 * was touched by the probe itself (an authenticated call, with the method's bounded renewal on
 * a 401). A session in use with no probe configured is touched here: one authenticated GET of
 * its `session.renewUrl`, so the server keeps it alive and re-issues the CSRF cookie before a
 * job needs it. Sessions not in use (a token is preferred and works) are left alone: the
 * keeper never sends one source's credentials where they are not the auth path in use.
 */
export type WarmResult =
  | { kind: 'none' }
  /** The probe used the session: it is warm. */
  | { kind: 'probed' }
  | { kind: 'touched'; status: number }
  | { kind: 'failed'; message: string; operatorAction: OperatorAction | null };

export async function keepWarm(lk: Latchkey, source: string, probe: ProbeResult, timeoutMs: number, signal: AbortSignal): Promise<WarmResult> {
  const src = lk.config.sources.get(source);
  if (!src?.session || probe.authPath !== 'session') return { kind: 'none' };
  if (src.probe) return { kind: 'probed' };
  const renewUrl = src.session.renewUrl;
  if (!renewUrl || (probe.status !== 'ok' && probe.status !== 'expiring')) return { kind: 'none' };
  // `signal` lives as long as the keeper: linked per call, never through AbortSignal.any (see deadline.ts).
  const deadline = callDeadline(signal, timeoutMs);
  try {
    const res = await lk.fetch(source, renewUrl, { method: 'GET', signal: deadline.signal, redirect: 'manual' });
    await res.body?.cancel().catch(() => undefined);
    return { kind: 'touched', status: res.status };
  } catch (err) {
    if (err instanceof LatchkeyError) return { kind: 'failed', message: err.message, operatorAction: err.operatorAction ?? null };
    return { kind: 'failed', message: (err as Error)?.message ?? String(err), operatorAction: null };
  } finally {
    deadline.dispose();
  }
}
