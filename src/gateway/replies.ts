import type { IncomingMessage, ServerResponse } from 'node:http';
import { json, problem, send, type Reply } from '../http/route-table.js';
import { JSON_HEADERS, SECURITY_HEADERS } from '../http/security-headers.js';
import { validateNext } from './next-path.js';
import type { RequestShape } from './request-shape.js';

/** A reply plus the cookies it sets (several `Set-Cookie` headers cannot share a record entry). */
export interface GatewayReply extends Reply {
  cookies?: readonly string[];
}

/** Writes a reply with its cookies. */
export function sendReply(req: IncomingMessage, res: ServerResponse, reply: GatewayReply): void {
  if (reply.cookies?.length) res.setHeader('Set-Cookie', appendCookies(res.getHeader('set-cookie'), reply.cookies));
  send(req, res, reply);
}

/** `Set-Cookie` values already on a response plus `more`. */
export function appendCookies(existing: number | string | string[] | undefined, more: readonly string[]): string[] {
  const before = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  return [...before, ...more];
}

/** A redirect (no body worth reading; never cached). */
export function redirect(location: string, cookies: readonly string[] = [], status = 302): GatewayReply {
  return { status, headers: { ...SECURITY_HEADERS, Location: location, 'Cache-Control': 'no-store', 'Content-Type': 'text/plain; charset=utf-8' }, body: '', cookies };
}

/** Whether the request is a page load (a browser navigation): GET/HEAD accepting HTML. */
export function isPageLoad(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

/** The login URL for a request (its own path as `next` when that is an acceptable one). */
export function loginUrl(shape: RequestShape, returnTo: string | undefined): string {
  const next = validateNext(returnTo);
  const path = next.ok && next.path !== '/' ? `?next=${encodeURIComponent(next.path)}` : '';
  return `${shape.prefix}/auth/login${path}`;
}

/** A session that is missing or over: a page load is sent to the login, an API call gets 401 JSON. */
export function signInRequired(req: IncomingMessage, shape: RequestShape, returnTo: string | undefined, cookies: readonly string[] = [], forcePageLoad?: boolean): GatewayReply {
  const url = loginUrl(shape, returnTo);
  if (forcePageLoad ?? isPageLoad(req)) return redirect(url, cookies);
  return { ...json(401, { error: 'session_expired', loginUrl: url }, { 'WWW-Authenticate': 'Cookie realm="latchkey"' }), cookies };
}

/** The IdP (or the store) cannot be asked now: 503 with Retry-After; the cookies are kept. */
export function unavailable(retryAfterSeconds: number, message = 'the identity provider cannot be reached right now; try again shortly'): GatewayReply {
  return problem(503, 'temporarily_unavailable', message, { 'Retry-After': String(retryAfterSeconds) });
}

export function badRequest(error: string, message: string, cookies: readonly string[] = []): GatewayReply {
  return { ...problem(400, error, message), cookies };
}

export { json, problem, JSON_HEADERS };
