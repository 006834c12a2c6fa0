import type { ProbeResult } from '../client/probe-types.js';
import type { SourceConfig } from '../config/schema.js';
import { sourceAwareFix } from '../config/source-fix.js';
import type { OperatorAction } from '../core/errors.js';
import type { RefreshStageResult } from './refresh-stage.js';
import type { Verdict } from './state.js';
import type { WarmResult } from './warm-stage.js';

/**
 * One source's verdict for the cycle, from its probe and its refresh-ahead. The probe says
 * whether the API accepts the credential now; the refresh says whether it will tomorrow: a
 * grant revoked at the IdP is `action_required` even while its last access token still works,
 * so the operator hears about it before the token expires and a job fails.
 *
 * `src` is the source's config (preset applied): every fix is decided with it, so the keeper,
 * `/readyz` and the dashboard never suggest `latchkey login` for a source that cannot log in.
 */
export function combineVerdict(source: string, probe: ProbeResult, refresh: RefreshStageResult, at: string, warm: WarmResult = { kind: 'none' }, src?: SourceConfig): Verdict {
  const fixFor = (action: OperatorAction, built?: string | null): string => sourceAwareFix(source, src, action, built);
  const v: Verdict = {
    status: probe.status,
    authPath: probe.authPath,
    operatorAction: probe.operatorAction,
    fix: probe.operatorAction ? fixFor(probe.operatorAction, probe.fix) : probe.fix,
    message: probe.message,
    expiresAt: probe.expiresAt,
    latencyMs: probe.latencyMs,
    at,
  };
  const oauthInUse = probe.authPath === 'oauth' || probe.authPath === null;
  if (refresh.kind === 'revoked' || refresh.kind === 'action') {
    const action: OperatorAction = refresh.kind === 'revoked' ? 'reauthorize' : refresh.operatorAction;
    const fix = fixFor(action);
    if (probe.status === 'action_required') return v;
    if (oauthInUse) {
      const still = probe.status === 'ok' || probe.status === 'expiring';
      return {
        ...v,
        status: 'action_required',
        operatorAction: action,
        fix,
        message: still
          ? `${refresh.message}; the current access token still works${probe.expiresAt ? ` until ${probe.expiresAt}` : ''}, then calls will fail`
          : refresh.message,
      };
    }
    return { ...v, message: `${v.message} (fallback oauth: ${refresh.message}; fix: ${fix})` };
  }
  if (warm.kind === 'failed' && probe.status !== 'action_required') {
    // The session keep-alive was refused even after the method's renewal: a person must sign in.
    if (warm.operatorAction && warm.operatorAction !== 'check_network') {
      return { ...v, status: 'action_required', operatorAction: warm.operatorAction, fix: fixFor(warm.operatorAction), message: `session keep-alive: ${warm.message}` };
    }
    return { ...v, message: `${v.message} (session keep-alive failed, will retry: ${warm.message})` };
  }
  if (refresh.kind === 'transient' && oauthInUse && (probe.status === 'ok' || probe.status === 'expiring')) {
    return { ...v, status: 'degraded', message: `refresh-ahead failed (will retry): ${refresh.message}; the current access token still works` };
  }
  return v;
}
