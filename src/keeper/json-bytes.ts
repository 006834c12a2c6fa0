/**
 * A value as one line of JSON, in bytes, written straight into a buffer of the right size.
 *
 * The keeper serializes health.json and keeper-state.json (a few MB at 1,000 sources with their
 * probe history) every cycle. `${JSON.stringify(v)}\n` followed by `Buffer.from` (or a file
 * write of the string) makes two more full-size copies — the joined string flattened, then its
 * bytes — all of them short-lived large objects that a 1,000-source keeper's heap had to absorb.
 */
export function jsonLineBytes(value: unknown): Buffer {
  const json = JSON.stringify(value);
  const size = Buffer.byteLength(json, 'utf8');
  const bytes = Buffer.allocUnsafeSlow(size + 1);
  bytes.write(json, 0, size, 'utf8');
  bytes[size] = 0x0a;
  return bytes;
}

/**
 * Pieces of text written in turn into one buffer (UTF-8), so that a large document (the 10,000
 * sources of health.json) is never one string as well as its bytes: each piece is short-lived.
 * `sizeHint` (the previous document's size) sizes the buffer; it grows by copying when the hint
 * was short, and ends up exactly as long as the text (at most 1/8 slack is kept).
 */
export function bytesOfPieces(pieces: Iterable<string>, sizeHint = 0): Buffer {
  let buf = Buffer.allocUnsafeSlow(Math.max(4096, Math.ceil(sizeHint)));
  let at = 0;
  for (const piece of pieces) {
    const need = Buffer.byteLength(piece, 'utf8');
    if (at + need > buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(buf.length * 2, at + need));
      buf.copy(bigger, 0, 0, at);
      buf = bigger;
    }
    at += buf.write(piece, at, need, 'utf8');
  }
  if (buf.length - at <= buf.length / 8) return buf.subarray(0, at);
  const exact = Buffer.allocUnsafeSlow(at);
  buf.copy(exact, 0, 0, at);
  return exact;
}
