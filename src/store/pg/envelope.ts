import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { LatchkeyError } from '../../core/errors.js';
import type { Secret } from '../../core/secret.js';

/**
 * Envelope encryption of the PostgreSQL store's secret columns (see "Encryption at rest" in
 * docs/DESIGN.md): a fresh 256-bit data key and nonce per value, the data key wrapped by the
 * master key, both with AES-256-GCM, both bound by additional authenticated data to the row and
 * column the value belongs to (`latchkey/v1/<table>/<column>/<row id>`), so a ciphertext copied
 * into another row or column fails its tag.
 *
 * Layout of a sealed value:
 * `0x01 | key id (8) | wrap nonce (12) | wrapped data key (32) | wrap tag (16) | nonce (12) | ciphertext | tag (16)`.
 */

const VERSION = 1;
const KEY_ID_BYTES = 8;
const NONCE = 12;
const TAG = 16;
const DATA_KEY = 32;
const HEADER = 1 + KEY_ID_BYTES + NONCE + DATA_KEY + TAG;

/** A master key (the key-encryption key) and its id (hex, derived from the key, safe to print). */
export interface MasterKey {
  readonly id: string;
  /** Held in a closure-free buffer; never printed (the class has no toString of it). */
  readonly key: Buffer;
}

/**
 * The keys a store opens values with: `current` seals every new value; `previous` (by id) only
 * open values sealed before a rotation (`latchkey rotate-key` re-wraps them under `current`).
 */
export interface MasterKeyring {
  current: MasterKey;
  previous?: ReadonlyMap<string, MasterKey>;
}

/** The id of a master key: the first 8 bytes of SHA-256 over a label and the key, in hex. */
export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update('latchkey master key id\0').update(key).digest().subarray(0, KEY_ID_BYTES).toString('hex');
}

/**
 * Parses a master key: 32 bytes in base64 (`openssl rand -base64 32`). `from` names where it
 * came from in the error (never the value).
 */
export function parseMasterKey(text: Secret, from: string): MasterKey {
  const value = text.reveal().trim();
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(value) || /^[A-Za-z0-9_-]+$/.test(value) ? Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64') : undefined;
  if (bytes === undefined || bytes.length !== 32) {
    throw new LatchkeyError(
      'LK_STORE_KEY',
      `the master key from ${from} is not 32 bytes in base64 (${bytes === undefined ? 'not base64' : `${bytes.length} bytes`}); make one with: openssl rand -base64 32`,
      { fix: 'export LATCHKEY_MASTER_KEY="$(openssl rand -base64 32)"   (the same key on every machine of the store)' },
    );
  }
  return { id: masterKeyId(bytes), key: bytes };
}

/** What a sealed value is bound to: its table, column and row (named in errors, never secret). */
export interface SealedAt {
  table: string;
  column: string;
  row: string;
}

function aadOf(at: SealedAt, layer: 'wrap' | 'data'): Buffer {
  return Buffer.from(`latchkey/v${VERSION}/${layer}/${at.table}/${at.column}/${at.row}`, 'utf8');
}

/** Seals `plaintext` for `at` under the ring's current key. */
export function seal(ring: MasterKeyring, at: SealedAt, plaintext: string): Buffer {
  const dataKey = randomBytes(DATA_KEY);
  const wrapNonce = randomBytes(NONCE);
  const wrapper = createCipheriv('aes-256-gcm', ring.current.key, wrapNonce);
  wrapper.setAAD(aadOf(at, 'wrap'));
  const wrapped = Buffer.concat([wrapper.update(dataKey), wrapper.final()]);
  const wrapTag = wrapper.getAuthTag();
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce);
  cipher.setAAD(aadOf(at, 'data'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  dataKey.fill(0);
  return Buffer.concat([Buffer.from([VERSION]), Buffer.from(ring.current.id, 'hex'), wrapNonce, wrapped, wrapTag, nonce, body, tag]);
}

/** The key id a sealed value names (undefined when it is not a sealed value at all). */
export function sealedKeyId(sealed: Buffer): string | undefined {
  if (sealed.length < HEADER + NONCE + TAG || sealed[0] !== VERSION) return undefined;
  return sealed.subarray(1, 1 + KEY_ID_BYTES).toString('hex');
}

function where(at: SealedAt): string {
  return `${at.table}.${at.column} of ${at.row}`;
}

/** The wrapped data key of a sealed value, opened (throws LK_STORE_KEY / LK_STORE_CORRUPT). */
function unwrap(ring: MasterKeyring, at: SealedAt, sealed: Buffer): { dataKey: Buffer; keyId: string } {
  const keyId = sealedKeyId(sealed);
  if (keyId === undefined) throw new LatchkeyError('LK_STORE_CORRUPT', `the stored value ${where(at)} is not a sealed value (truncated or written by something else); it was left as it is`);
  const master = keyId === ring.current.id ? ring.current : ring.previous?.get(keyId);
  if (master === undefined) {
    throw new LatchkeyError(
      'LK_STORE_KEY',
      `the stored value ${where(at)} was sealed with master key ${keyId}, but the master key given is ${ring.current.id}: set LATCHKEY_MASTER_KEY to the key this store was created with (nothing was changed)`,
    );
  }
  let o = 1 + KEY_ID_BYTES;
  const wrapNonce = sealed.subarray(o, (o += NONCE));
  const wrapped = sealed.subarray(o, (o += DATA_KEY));
  const wrapTag = sealed.subarray(o, (o += TAG));
  try {
    const d = createDecipheriv('aes-256-gcm', master.key, wrapNonce);
    d.setAAD(aadOf(at, 'wrap'));
    d.setAuthTag(wrapTag);
    return { dataKey: Buffer.concat([d.update(wrapped), d.final()]), keyId };
  } catch {
    throw tampered(at);
  }
}

function tampered(at: SealedAt): LatchkeyError {
  return new LatchkeyError(
    'LK_STORE_CORRUPT',
    `the stored value ${where(at)} fails authentication: it was altered, or copied from another row or column; it was refused and left as it is`,
  );
}

/** Opens a value sealed for `at` (throws LK_STORE_KEY for a key that is not in the ring, LK_STORE_CORRUPT for a tag that fails). */
export function open(ring: MasterKeyring, at: SealedAt, sealed: Buffer): string {
  const { dataKey } = unwrap(ring, at, sealed);
  const nonce = sealed.subarray(HEADER, HEADER + NONCE);
  const body = sealed.subarray(HEADER + NONCE, sealed.length - TAG);
  const tag = sealed.subarray(sealed.length - TAG);
  try {
    const d = createDecipheriv('aes-256-gcm', dataKey, nonce);
    d.setAAD(aadOf(at, 'data'));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(body), d.final()]).toString('utf8');
  } catch {
    throw tampered(at);
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Re-wraps a sealed value's data key under the ring's current key (for `latchkey rotate-key`):
 * the ciphertext is unchanged, only the header's key id and wrapped data key change. The value
 * is authenticated first (a value that fails is refused, never re-wrapped).
 */
export function rewrap(ring: MasterKeyring, at: SealedAt, sealed: Buffer): Buffer {
  const { dataKey, keyId } = unwrap(ring, at, sealed);
  try {
    open(ring, at, sealed); // the data layer must authenticate too before anything is rewritten
    if (keyId === ring.current.id) return sealed;
    const wrapNonce = randomBytes(NONCE);
    const wrapper = createCipheriv('aes-256-gcm', ring.current.key, wrapNonce);
    wrapper.setAAD(aadOf(at, 'wrap'));
    const wrapped = Buffer.concat([wrapper.update(dataKey), wrapper.final()]);
    const wrapTag = wrapper.getAuthTag();
    return Buffer.concat([Buffer.from([VERSION]), Buffer.from(ring.current.id, 'hex'), wrapNonce, wrapped, wrapTag, sealed.subarray(HEADER)]);
  } finally {
    dataKey.fill(0);
  }
}
