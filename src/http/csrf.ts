import type { IncomingMessage } from 'node:http';

/**
 * Why a state-changing request is refused as a possible cross-site request forgery, or
 * undefined when it may proceed. Three checks, any one of which a forged request fails:
 * - a custom header (`X-Latchkey-Action: 1`): a cross-origin page cannot set it without a CORS
 *   preflight, which no Latchkey surface answers;
 * - `Sec-Fetch-Site` (Fetch Metadata), when the browser sends it: only `same-origin` or `none`;
 * - `Origin`, when present: it must be this very host (http or https).
 */
export function csrfRefusal(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  if (req.headers['x-latchkey-action'] !== '1') return 'missing header X-Latchkey-Action: 1';
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const host = req.headers.host;
    if (!host || (origin !== `http://${host}` && origin !== `https://${host}`)) return `cross-origin request refused (Origin ${origin})`;
  }
  return undefined;
}

/**
 * The gateway's variant of the same checks (issue 10): its custom header is
 * `X-Latchkey-CSRF: 1`, and the origin to compare with is the public one (behind a trusted
 * proxy it is not the `Host` the gateway sees). Undefined when the request may proceed.
 */
export function csrfRefusalFor(req: Pick<IncomingMessage, 'headers'>, options: { header: string; expectedOrigin: string }): string | undefined {
  const name = options.header.toLowerCase();
  if (req.headers[name] !== '1') return `missing header ${options.header}: 1`;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${String(site).slice(0, 32)})`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== options.expectedOrigin) return 'cross-origin request refused (Origin)';
  return undefined;
}
