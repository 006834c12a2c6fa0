import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ExitCode, LatchkeyError } from '../core/errors.js';

/** Path of the redirect URI; nothing else on the loopback server does anything. */
export const CALLBACK_PATH = '/callback';

/** What the browser is shown once the login has an outcome. */
export type CallbackOutcome = { ok: true; source: string } | { ok: false; message: string };

/** The first `GET /callback` the loopback server received. */
export interface ReceivedCallback {
  /** The authorization response parameters (the query string), for oauth4webapi to validate. */
  params: URLSearchParams;
  /**
   * Answers the waiting browser with the fixed success page or an error page. The response is
   * held until then, so the tab shows the real outcome of the token exchange.
   */
  respond(outcome: CallbackOutcome): void;
}

/** A loopback redirect endpoint (RFC 8252 §7.3) for one authorization request. */
export interface LoopbackRedirect {
  /** `http://127.0.0.1:<port>/callback` */
  readonly redirectUri: string;
  readonly port: number;
  /** Resolves with the first `GET /callback`; rejects when `signal` aborts. */
  waitForCallback(signal?: AbortSignal): Promise<ReceivedCallback>;
  /** Stops listening and drops every connection (a held callback gets an error page first). */
  close(): Promise<void>;
}

const LOOPBACK_HOST = '127.0.0.1';

/**
 * Starts the redirect endpoint of a native-app login: `127.0.0.1` on a port the OS picks
 * (RFC 8252 §7.3 and §8.3: the IP literal, not `localhost`, so no resolver or other interface
 * can answer instead of us).
 *
 * Only `GET /callback` with the expected `Host` is taken as the authorization response; every
 * other request gets a 404 and cannot complete, fail or redirect the login. The server never
 * redirects: the browser sees one fixed page, whatever the query string says, so there is no
 * `next`/return parameter an attacker could point elsewhere.
 */
export async function startLoopbackRedirect(): Promise<LoopbackRedirect> {
  let pending: { resolve: (cb: ReceivedCallback) => void } | undefined;
  let received: ReceivedCallback | undefined;
  let held: ServerResponse | undefined;
  let port = 0;

  const server = createServer((req, res) => {
    handle(req, res);
  });
  server.keepAliveTimeout = 1_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  function handle(req: IncomingMessage, res: ServerResponse): void {
    // DNS rebinding: a page on another origin that resolves to 127.0.0.1 sends its own Host.
    if (req.headers.host !== `${LOOPBACK_HOST}:${port}`) {
      sendPage(res, 400, 'Bad request', 'This address only serves the sign-in of a Latchkey command.');
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${LOOPBACK_HOST}:${port}`);
    } catch {
      sendPage(res, 400, 'Bad request', 'Malformed request.');
      return;
    }
    if (url.pathname !== CALLBACK_PATH) {
      sendPage(res, 404, 'Not found', 'Nothing here.');
      return;
    }
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      sendPage(res, 405, 'Method not allowed', 'The sign-in response arrives as a GET request.');
      return;
    }
    if (received) {
      sendPage(res, 409, 'Already finished', 'This sign-in already received its response. Return to the terminal.');
      return;
    }
    held = res;
    res.on('close', () => {
      if (held === res) held = undefined;
    });
    const cb: ReceivedCallback = {
      params: url.searchParams,
      respond(outcome) {
        const r = held;
        held = undefined;
        if (!r || r.writableEnded) return;
        if (outcome.ok) {
          sendPage(r, 200, 'Signed in', `Latchkey is now signed in to “${outcome.source}”. You can close this tab and return to the terminal.`);
        } else {
          sendPage(r, 400, 'Sign-in failed', `${outcome.message}. Return to the terminal for details.`);
        }
      },
    };
    received = cb;
    pending?.resolve(cb);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK_HOST, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new LatchkeyError('LK_LOGIN_FAILED', `cannot listen on ${LOOPBACK_HOST} for the login redirect: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      exitCode: ExitCode.usage,
    });
  });
  port = (server.address() as AddressInfo).port;

  return {
    redirectUri: `http://${LOOPBACK_HOST}:${port}${CALLBACK_PATH}`,
    port,
    waitForCallback(signal) {
      if (received) return Promise.resolve(received);
      return new Promise<ReceivedCallback>((resolve, reject) => {
        const onAbort = (): void => reject(signal?.reason ?? new Error('aborted'));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        pending = {
          resolve: (cb) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(cb);
          },
        };
      });
    },
    async close() {
      if (held && !held.writableEnded) {
        sendPage(held, 400, 'Sign-in stopped', 'Latchkey stopped waiting for this sign-in. Return to the terminal.');
      }
      held = undefined;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendPage(res: ServerResponse, status: number, title: string, text: string): void {
  const html = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>${escapeHtml(title)} · Latchkey</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}</style></head>
<body><h1 id="title">${escapeHtml(title)}</h1><p id="message">${escapeHtml(text)}</p></body>
</html>
`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(Buffer.byteLength(html)),
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    connection: 'close',
  });
  res.end(html);
}
