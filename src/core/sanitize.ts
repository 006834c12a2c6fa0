/**
 * The one sanitizer for text that came from elsewhere: an IdP's `error_description`, a
 * revocation endpoint's answer, an API's 401 body or `WWW-Authenticate` header, a browser's or
 * CDP's message, a session renewal's answer. Such text may quote the very token it refused, or
 * another secret this profile holds, and may carry escape sequences meant for a terminal.
 *
 * The order matters: escape sequences and control characters go first (so a secret split by
 * them is whole again), then every piece of {@link WINDOW}+ characters of every secret the
 * process holds (src/secret-index.ts) is replaced by `[redacted]`, and only then is the text
 * cut to length: cutting first would leave the prefix of a secret that straddles the cut.
 */
import { REDACTED } from './redacted.js';
import { findSecretRuns, WINDOW } from './secret-index.js';

export { REDACTED, WINDOW };

/** A line of remote text is cut to this many characters by default. */
export const DEFAULT_MAX_CHARS = 200;

/**
 * ECMA-48 escape sequences, removed whole (a terminal acts on all of them, not only on ESC):
 * OSC, DCS, SOS, PM and APC strings (7- or 8-bit introducer) up to BEL or ST, or to the end of
 * the text when unterminated (a terminal would swallow the rest too); CSI sequences;
 * two-character escapes (with intermediates).
 */
const ESCAPE_SEQUENCES =
  // eslint-disable-next-line no-control-regex
  /(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[\s\S]*?(?:\x07|\x1b\\|\x9c|$)|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?|\x1b[\x20-\x2f]*[\x30-\x7e]?/g;
/** Line and page breaks: a space on one line, kept in a multi-line text. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]+/g;
const BREAKS_BUT_NEWLINE_AND_TAB = /[\v\f\r\u0085\u2028\u2029]+/g;
/** What remains of C0, DEL and C1, plus invisible format characters (zero-width, bidi overrides: they reorder what a terminal shows). */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
const LONE_SURROGATES = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** A huge body is not read further than this before cleaning (any piece cut here is shorter than WINDOW or still matched). */
const MAX_INPUT_CHARS = 64 * 1024;

/**
 * Remote `text` made safe for one terminal line, a log, a file or an HTTP answer: escape
 * sequences and control characters removed (line breaks become a space), every piece of a held
 * secret redacted, then cut to `max` characters (with `…`).
 */
export function sanitizeRemoteText(text: unknown, max = DEFAULT_MAX_CHARS): string {
  const raw = typeof text === 'string' ? text : String(text);
  const capped = raw.length > Math.max(MAX_INPUT_CHARS, max * 16) ? raw.slice(0, Math.max(MAX_INPUT_CHARS, max * 16)) : raw;
  return redactThenCut(stripControls(capped, true), max);
}

/**
 * Our own message, which may quote remote text or (by mistake) a secret, made safe the same way
 * but kept whole and multi-line: for what is printed, stored or served at the edges (an error
 * on stderr, a failure stored in the store or health.json, the keeper's HTTP answers).
 */
export function sanitizeMessage(text: string): string {
  return redactThenCut(stripControls(text, false), Infinity);
}

/** `text` without escape sequences and control characters; line breaks become spaces when `oneLine`. */
export function stripControls(text: string, oneLine: boolean): string {
  return text
    .replace(ESCAPE_SEQUENCES, '')
    .replace(oneLine ? BREAKS : BREAKS_BUT_NEWLINE_AND_TAB, ' ')
    .replace(CONTROLS, '');
}

function redactThenCut(clean: string, max: number): string {
  // One more than max is scanned, so that a cut is known to be one.
  const runs = findSecretRuns(clean, max + 1, REDACTED.length);
  if (runs.count === 0 && runs.scannedUntil === clean.length && clean.length <= max) return withoutHalfCharacters(clean);
  let out = '';
  let from = 0;
  let cut = false;
  for (let k = 0; k <= runs.count && !cut; k++) {
    const plainEnd = k < runs.count ? runs.starts[k]! : runs.scannedUntil;
    if (out.length + (plainEnd - from) > max) {
      out += clean.slice(from, from + (max - out.length));
      cut = true;
      break;
    }
    out += clean.slice(from, plainEnd);
    if (k === runs.count) break;
    // The marker whole or not at all: the text stays within max (plus the ellipsis).
    if (out.length + REDACTED.length > max) {
      cut = true;
      break;
    }
    out += REDACTED;
    from = runs.ends[k]!;
  }
  if (!cut && runs.scannedUntil < clean.length) cut = true;
  out = withoutHalfCharacters(out);
  return cut ? `${out}…` : out;
}

/** A cut between the two halves of a surrogate pair, or a redaction inside one, leaves half a character. */
function withoutHalfCharacters(text: string): string {
  return text.replace(LONE_SURROGATES, '\ufffd');
}
