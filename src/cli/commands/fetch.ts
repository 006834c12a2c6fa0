import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { openLatchkey } from '../../latchkey.js';
import { usageError, type CliIO, type Command } from '../io.js';
import { sanitizeRemoteText } from '../../core/sanitize.js';

/** RFC 9110 §5.1 field names. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 §9.1 method token. */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Largest body `-d @file` / `-d @-` will read. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

const options = {
  request: { type: 'string', short: 'X' },
  data: { type: 'string', short: 'd' },
  header: { type: 'string', short: 'H', multiple: true },
  timeout: { type: 'string' },
} as const;

export const command: Command = {
  summary: 'call an API with a source\'s credentials (one 401 recovery); prints the body',
  usage: `latchkey fetch <source> <url> [-X METHOD] [-d <body>|@file|@-] [-H 'Name: value']... [--timeout <ms>]
  Adds the credentials of the source's current auth path; on a 401 recovers once and retries once.
  -d sends a body (POST unless -X says otherwise); @file reads it from a file, @- from stdin.
  A body starting with { or [ is sent as application/json unless -H sets Content-Type.
  Prints the response body on stdout. Exit: 0 for 2xx; 4 for 401/403 (after recovery);
  3 for 5xx, 429, network errors and timeouts; 1 otherwise.`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    const [source, url, ...extra] = positionals;
    if (!source || !url || extra.length) throw usageError(`expected a source and a URL\nusage: ${this.usage}`);
    const headers = parseHeaders(values.header ?? []);
    const method = (values.request ?? (values.data !== undefined ? 'POST' : 'GET')).toUpperCase();
    if (!METHOD.test(method)) throw usageError(`-X ${JSON.stringify(values.request)} is not an HTTP method`);
    if (values.data !== undefined && (method === 'GET' || method === 'HEAD')) {
      throw usageError(`-d sends a request body, which a ${method} request cannot have; use -X POST (or another method), or drop -d`);
    }
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (values.data !== undefined) {
      body = await readData(values.data, io);
      if (!headers.has('content-type') && typeof body === 'string' && /^\s*[[{]/.test(body)) headers.set('content-type', 'application/json');
    }
    let signal: AbortSignal | undefined;
    if (values.timeout !== undefined) {
      const ms = Number(values.timeout);
      if (!Number.isInteger(ms) || ms <= 0) throw usageError('--timeout takes a positive number of milliseconds');
      signal = AbortSignal.timeout(ms);
    }
    const lk = await openLatchkey({ env: io.env });
    try {
      let res: Response;
      try {
        res = await lk.fetch(source, url, { method, headers, body, signal });
      } catch (err) {
        if (err instanceof LatchkeyError) throw err;
        const { networkErrorText } = await import('../../client/fetch.js');
        const what = signal?.aborted ? `no answer within ${values.timeout} ms` : networkErrorText(err, url);
        io.stderr.write(`latchkey: ${source}: ${method} ${safeUrl(url)}: ${what}\n`);
        return ExitCode.unreachable;
      }
      await writeBody(res, io);
      if (res.ok) return ExitCode.ok;
      io.stderr.write(`latchkey: ${source}: ${method} ${safeUrl(url)} answered ${res.status}${res.statusText ? ` ${sanitizeRemoteText(res.statusText, 64)}` : ''}\n`);
      return exitCodeForStatus(res.status);
    } finally {
      await lk.close();
    }
  },
};

/** The exit code for a final, non-2xx status (a final 401 arrives as an error instead). */
export function exitCodeForStatus(status: number): ExitCode {
  if (status >= 200 && status < 300) return ExitCode.ok;
  if (status === 401 || status === 403) return ExitCode.actionRequired;
  if (status >= 500 || status === 429) return ExitCode.unreachable;
  return ExitCode.usage;
}

/** `Name: value` pairs; a malformed one is a usage error that names the header, never its value. */
export function parseHeaders(raw: readonly string[]): Headers {
  const headers = new Headers();
  for (const h of raw) {
    const colon = h.indexOf(':');
    const name = colon > 0 ? h.slice(0, colon).trim() : '';
    if (!HEADER_NAME.test(name)) throw usageError(`-H expects 'Name: value' with a valid header name (got a header without one)`);
    const value = h.slice(colon + 1).trim();
    try {
      headers.append(name, value);
    } catch {
      throw usageError(`-H ${name}: the value is not a valid HTTP header value (control characters such as a newline are not allowed)`);
    }
  }
  return headers;
}

async function readData(data: string, io: CliIO): Promise<string | Uint8Array<ArrayBuffer>> {
  if (!data.startsWith('@')) return data;
  if (data === '@-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of io.stdin) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      size += b.length;
      if (size > MAX_BODY_BYTES) throw usageError(`-d @-: the body on stdin exceeds ${MAX_BODY_BYTES} bytes`);
      chunks.push(b);
    }
    return bodyOf(Buffer.concat(chunks));
  }
  const path = data.slice(1);
  try {
    return bodyOf(await readFile(path));
  } catch (err) {
    throw usageError(`-d @${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Text stays text (so a JSON body is recognized); anything else is sent as bytes. */
function bodyOf(buf: Buffer): string | Uint8Array<ArrayBuffer> {
  const text = buf.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(buf)) return text;
  const bytes = new Uint8Array(new ArrayBuffer(buf.length));
  bytes.set(buf);
  return bytes;
}

async function writeBody(res: Response, io: CliIO): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  // A reader that went away (`latchkey fetch … | head -c 100`): stop reading, quietly.
  let closed = false;
  const onError = (): void => {
    closed = true;
  };
  io.stdout.on('error', onError);
  try {
    while (!closed) {
      const { done, value } = await reader.read();
      if (done) return;
      if (!io.stdout.write(value)) await once(io.stdout, 'drain').catch(onError);
    }
    await reader.cancel().catch(() => undefined);
  } finally {
    io.stdout.off('error', onError);
  }
}

/** The URL without its query (which may carry secrets) for messages. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
