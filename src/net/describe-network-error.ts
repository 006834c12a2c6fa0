/**
 * One phrase for a failed connection that names where it went: "connection refused by
 * 127.0.0.1:9 (ECONNREFUSED)", "cannot resolve idp.example (ENOTFOUND)". Built from undici's
 * `TypeError: fetch failed` and its cause chain (the system error carries `address`/`port` or
 * `hostname`); `url`, when given, names the host and port when the cause does not.
 *
 * Shared by every place an upstream call fails (probes, `latchkey fetch`, login, logout and
 * the token endpoint), so an operator reads the same words everywhere. Never includes a URL's
 * path or query (they may carry a secret), only host and port.
 */

interface SystemErrorFields {
  code?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  host?: unknown;
  message?: unknown;
  cause?: unknown;
}

const TLS_CODE = /^(CERT_|ERR_TLS_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_SSL_)/;

/** The first error code in `err`'s cause chain and the fields around it. */
function innermost(err: unknown): { code: string | undefined; fields: SystemErrorFields } {
  let e: unknown = err;
  let found: SystemErrorFields | undefined;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const f = e as SystemErrorFields;
    if (typeof f.code === 'string' && f.code !== 'UND_ERR_SOCKET') found = f;
    else if (typeof f.code === 'string' && found === undefined) found = f;
    // AggregateError (happy eyeballs tried several addresses): its first error says it.
    const errors = (e as { errors?: unknown }).errors;
    e = f.cause ?? (Array.isArray(errors) ? errors[0] : undefined);
  }
  return { code: typeof found?.code === 'string' ? found.code : undefined, fields: found ?? {} };
}

/** host:port of `url` (the scheme's default port when it has none), or undefined. */
export function hostPortOf(url: string | URL | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    const port = u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
    return `${u.hostname}:${port}`;
  } catch {
    return undefined;
  }
}

/** Names the host (and port) the failed call went to, and what happened; see the module comment. */
export function describeNetworkError(err: unknown, url?: string | URL): string {
  const { code, fields } = innermost(err);
  const fromUrl = hostPortOf(url);
  const address = typeof fields.address === 'string' ? fields.address : undefined;
  const port = typeof fields.port === 'number' || typeof fields.port === 'string' ? String(fields.port) : undefined;
  const where = address && port ? `${address.includes(':') ? `[${address}]` : address}:${port}` : (fromUrl ?? address ?? 'the server');
  const host = typeof fields.hostname === 'string' ? fields.hostname : fromUrl ? fromUrl.replace(/:\d+$/, '') : 'the host';
  const name = (err as { name?: unknown })?.name;
  if (name === 'TimeoutError') return `no answer from ${fromUrl ?? where} before the timeout`;
  switch (code) {
    case undefined:
      // No system error: undici's own reason is the innermost message ("bad port": fetch refuses some ports).
      return `cannot reach ${where} (${innermostMessage(err)})`;
    case 'ECONNREFUSED':
      return `connection refused by ${where} (ECONNREFUSED)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `cannot resolve ${host} (${code})`;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `no connection to ${where} before the timeout (${code})`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return `connection to ${where} closed unexpectedly (${code})`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable from here (${code})`;
    default:
      if (TLS_CODE.test(code)) return `the TLS certificate of ${where} was not accepted (${code})`;
      return `cannot reach ${where} (${code})`;
  }
}

/** The deepest message in the cause chain other than fetch's generic "fetch failed". */
function innermostMessage(err: unknown): string {
  let message = 'fetch failed';
  let e: unknown = err;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string' && m !== '' && m !== 'fetch failed') message = m.slice(0, 100);
    e = (e as { cause?: unknown }).cause;
  }
  return message;
}
