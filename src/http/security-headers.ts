/**
 * Headers every response of a Latchkey HTTP surface carries (the keeper's dashboard and API
 * today, the gateway next). Frozen at start-up: a request copies nothing.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  // Data responses run no script and embed nothing; a page's own policy replaces this.
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
});

/** A JSON answer that no cache keeps. */
export const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });

/** The same, for an answer that may be sent gzipped. */
export const GZIP_JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ ...JSON_HEADERS, Vary: 'Accept-Encoding' });
