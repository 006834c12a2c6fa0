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
