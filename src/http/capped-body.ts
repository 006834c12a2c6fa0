/**
 * Reads a body up to a byte limit, so a peer that streams megabytes of garbage cannot exhaust
 * memory: the one capped reader for request bodies (a Node `IncomingMessage`) and response
 * bodies (a web `ReadableStream`). Past the limit it stops reading and cancels the stream.
 */

/** The whole body, or `tooLarge` once more than `maxBytes` arrived (nothing more is read). */
export type CappedBody = { ok: true; bytes: Uint8Array<ArrayBuffer> } | { ok: false; tooLarge: true };

export async function readCappedBody(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null | undefined, maxBytes: number): Promise<CappedBody> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (body instanceof ReadableStream) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        return { ok: false, tooLarge: true };
      }
      chunks.push(value);
    }
  } else if (body) {
    // Leaving a for-await early destroys a Node stream: the rest of the request is not read.
    for await (const chunk of body) {
      total += chunk.byteLength;
      if (total > maxBytes) return { ok: false, tooLarge: true };
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(new ArrayBuffer(total));
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, bytes };
}
