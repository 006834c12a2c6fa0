import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import * as oauth from 'oauth4webapi';
import { Secret } from '../core/secret.js';
import { expiresAtOf } from '../engine/expiry.js';
import { ATTEMPT_ID, cookieRule, deletionHeaders, readGatewayCookies, setCookieHeader } from './cookie-rules.js';
import type { GatewayContext } from './context.js';
import { headerSafe } from './identity-headers.js';
import { validateNext } from './next-path.js';
import { CallbackError } from './oidc-client.js';
import { badRequest, problem, redirect, unavailable, type GatewayReply } from './replies.js';
import type { RequestShape } from './request-shape.js';
import { newSessionId, type SessionData } from './session-store.js';

/**
 * `GET /auth/login?next=` and `GET /auth/callback`: the authorization code flow with PKCE S256,
 * `state` and `nonce`.
 *
 * Each attempt has its own sealed login-transaction cookie, `latchkey_login_<attempt>` (8
 * base64url characters, also the first part of `state`), so sign-ins started in two tabs never
 * overwrite each other. It holds the state, the PKCE verifier, the nonce, the return path and
 * the redirect URI, lives 10 minutes, and is good once: the callback consumes a marker stored at
 * login time (`tickets` keyspace, atomic `consume`), so a replayed callback fails before its
 * code is ever sent to the IdP (whose reuse detection would otherwise revoke the session the
 * first use created).
 */

export const LOGIN_TTL_SECONDS = 600;
/** Attempts kept per browser: starting more deletes the oldest cookies. */
export const MAX_LOGIN_ATTEMPTS = 3;

interface LoginTransaction {
  a: string;
  s: string;
  v: string;
  n: string;
  x: string;
  r: string;
  t: number;
}

function queryOf(req: IncomingMessage): URLSearchParams {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startLogin(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): Promise<GatewayReply> {
  const query = queryOf(req);
  if (query.getAll('next').length > 1) return badRequest('bad_request', 'next is given more than once');
  const next = validateNext(query.get('next'));
  if (!next.ok) return badRequest('bad_request', next.message);
  // Before anything is stored: a start stores a login marker (see LoginLimiter).
  const verdict = ctx.loginLimiter.take(shape.clientAddress, ctx.clock.now());
  if (!verdict.ok) {
    ctx.metrics.loginStarts.inc({ outcome: verdict.scope === 'client' ? 'limited_client' : 'limited_all' });
    if (verdict.firstRefusal) {
      ctx.log('warn', 'login_rate_limited', { scope: verdict.scope, message: verdict.scope === 'client' ? 'one client starts sign-ins faster than loginRateLimit.perClientPerMinute allows' : 'sign-ins start faster than loginRateLimit.allPerMinute allows' });
    }
    return problem(429, 'too_many_logins', `too many sign-ins started; try again in ${verdict.retryAfterSeconds} s`, { 'Retry-After': String(verdict.retryAfterSeconds) });
  }
  ctx.metrics.loginStarts.inc({ outcome: 'started' });
  const attempt = randomBytes(6).toString('base64url');
  const state = `${attempt}.${randomBytes(24).toString('base64url')}`;
  const nonce = oauth.generateRandomNonce();
  const verifier = oauth.generateRandomCodeVerifier();
  const redirectUri = `${shape.origin}${shape.prefix}/auth/callback`;
  let url: string;
  try {
    url = await ctx.oidc.authorizationUrl({ redirectUri, state, nonce, codeChallenge: await oauth.calculatePKCECodeChallenge(verifier) });
  } catch {
    ctx.log('warn', 'discovery_failed', { message: 'the IdP\'s metadata cannot be read' });
    return unavailable(5);
  }
  await ctx.store.put('tickets', `login:${state}`, new Secret('1'), LOGIN_TTL_SECONDS * 1000);
  const tx: LoginTransaction = { a: attempt, s: state, v: verifier, n: nonce, x: next.path, r: redirectUri, t: ctx.clock.now() };
  const cookies = [setCookieHeader(cookieRule('login', shape, attempt), ctx.key.seal(JSON.stringify(tx), `login:${attempt}`), LOGIN_TTL_SECONDS)];
  cookies.push(...staleAttempts(ctx, req, shape));
  return redirect(url, cookies);
}

/** Deletions for login-attempt cookies beyond the newest {@link MAX_LOGIN_ATTEMPTS} - 1 (this one makes the last). */
function staleAttempts(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): string[] {
  const found: Array<{ attempt: string; t: number }> = [];
  for (const [base, values] of readGatewayCookies(req).values) {
    if (!base.startsWith('latchkey_login_')) continue;
    const attempt = base.slice('latchkey_login_'.length);
    if (!ATTEMPT_ID.test(attempt)) continue;
    let t = -1;
    for (const v of values) {
      const raw = ctx.key.openJson(v, `login:${attempt}`);
      if (raw && typeof raw.t === 'number') t = Math.max(t, raw.t);
    }
    found.push({ attempt, t });
  }
  found.sort((a, b) => b.t - a.t);
  return found.slice(MAX_LOGIN_ATTEMPTS - 1).flatMap((f) => deletionHeaders('login', shape, f.attempt));
}

export async function finishLogin(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): Promise<GatewayReply> {
  const query = queryOf(req);
  const states = query.getAll('state');
  if (states.length !== 1 || !states[0]) {
    ctx.metrics.logins.inc({ outcome: 'bad_state' });
    return badRequest('invalid_callback', 'the callback carries no single state parameter');
  }
  const state = states[0];
  const attempt = state.split('.')[0] ?? '';
  if (!ATTEMPT_ID.test(attempt) || state.length > 200) {
    ctx.metrics.logins.inc({ outcome: 'bad_state' });
    return badRequest('invalid_callback', 'the callback\'s state does not belong to a sign-in of this gateway');
  }
  const clear = deletionHeaders('login', shape, attempt);
  let tx: LoginTransaction | undefined;
  for (const value of readGatewayCookies(req).values.get(`latchkey_login_${attempt}`) ?? []) {
    const raw = ctx.key.openJson(value, `login:${attempt}`) as Partial<LoginTransaction> | undefined;
    if (raw && typeof raw.s === 'string' && sameText(raw.s, state) && typeof raw.v === 'string' && typeof raw.n === 'string' && typeof raw.x === 'string' && typeof raw.r === 'string' && typeof raw.t === 'number') {
      tx = raw as LoginTransaction;
      break;
    }
  }
  if (!tx || ctx.clock.now() - tx.t > LOGIN_TTL_SECONDS * 1000) {
    ctx.metrics.logins.inc({ outcome: 'no_transaction' });
    return badRequest('login_expired', 'no sign-in in progress matches this callback (it expired, was started in another browser, or the request is forged); start again at /auth/login', clear);
  }
  if (tx.r !== `${shape.origin}${shape.prefix}/auth/callback`) {
    ctx.metrics.logins.inc({ outcome: 'bad_state' });
    return badRequest('invalid_callback', 'the callback arrived at another address than the sign-in started from', clear);
  }
  if ((await ctx.store.consume('tickets', `login:${state}`)) === undefined) {
    ctx.metrics.logins.inc({ outcome: 'replayed' });
    return badRequest('login_replayed', 'this sign-in was already completed (or expired); start again at /auth/login', clear);
  }
  // A code this gateway already exchanged is never sent again: the IdP's reuse detection would
  // revoke the grant of the session the first exchange created (RFC 6749 §4.1.2).
  const code = query.get('code');
  const codeKey = code ? `code:${createHash('sha256').update(code).digest('base64url')}` : undefined;
  if (codeKey && (await ctx.store.get('tickets', codeKey)) !== undefined) {
    ctx.metrics.logins.inc({ outcome: 'code_replayed' });
    return badRequest('code_replayed', 'this authorization code was already used; start again at /auth/login', clear);
  }
  if (codeKey) await ctx.store.put('tickets', codeKey, new Secret('1'), LOGIN_TTL_SECONDS * 1000);
  const requestedAt = ctx.clock.now();
  let exchanged;
  try {
    exchanged = await ctx.oidc.exchange(query, { state, nonce: tx.n, verifier: tx.v, redirectUri: tx.r });
  } catch (err) {
    if (err instanceof CallbackError) {
      ctx.metrics.logins.inc({ outcome: err.error });
      ctx.log('warn', 'login_failed', { error: err.error, message: err.message });
      return { ...problem(err.status, err.error, err.message, err.status === 503 ? { 'Retry-After': '5' } : {}), cookies: clear };
    }
    ctx.metrics.logins.inc({ outcome: 'unavailable' });
    return { ...unavailable(5), cookies: clear };
  }
  let claims: Record<string, unknown> = exchanged.claims;
  const sub = headerSafe(typeof claims.sub === 'string' ? claims.sub : undefined);
  if (sub && (typeof claims.email !== 'string' || typeof claims.name !== 'string')) claims = { ...(await ctx.oidc.userInfo(exchanged.accessToken, sub)), ...claims };
  if (!sub) {
    ctx.metrics.logins.inc({ outcome: 'invalid_id_token' });
    return { ...problem(400, 'invalid_id_token', 'the ID token\'s subject is not usable; start the sign-in again'), cookies: clear };
  }
  const now = ctx.clock.now();
  const expiresAt = expiresAtOf(requestedAt, exchanged.expiresIn);
  const refreshTtl = exchanged.refreshExpiresIn !== undefined ? exchanged.refreshExpiresIn * 1000 : ctx.sessions.refreshTtlMs;
  const session: SessionData = {
    gen: 1,
    version: 1,
    identity: {
      sub,
      ...(typeof claims.email === 'string' ? { email: claims.email.slice(0, 320) } : {}),
      ...(typeof claims.name === 'string' ? { name: claims.name.slice(0, 200) } : {}),
    },
    accessToken: exchanged.accessToken,
    ...(exchanged.refreshToken ? { refreshToken: exchanged.refreshToken } : {}),
    idToken: exchanged.idToken,
    tokenType: exchanged.tokenType,
    ...(exchanged.scope ? { scope: exchanged.scope } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    obtainedAt: requestedAt,
    createdAt: now,
    endsAt: exchanged.refreshToken ? now + refreshTtl : (expiresAt ?? now + 3_600_000),
  };
  const sid = newSessionId();
  await ctx.sessions.create(sid, session);
  ctx.metrics.logins.inc({ outcome: 'ok' });
  ctx.log('info', 'login', { refreshToken: exchanged.refreshToken !== undefined });
  return redirect(`${shape.prefix}${tx.x}`, [...clear, ...ctx.cookies.issue(shape, sid, session)]);
}
