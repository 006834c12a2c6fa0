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
