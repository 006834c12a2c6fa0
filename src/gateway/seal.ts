import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { Redacted } from '../core/redacted.js';
import { Secret } from '../core/secret.js';

/**
 * AES-256-GCM sealing: what the gateway puts in a cookie or in the store is encrypted and
 * authenticated with one key, bound by additional authenticated data to what it is (`at`, `rt`,
 * `login`, `session:<id>`…), so a value sealed for one purpose never opens as another.
 *
 * Format: `v1.` + base64url(iv 12 bytes ‖ ciphertext ‖ tag 16 bytes). Nothing about a value
 * that fails to open is ever reported beyond "it does not open".
 */

const VERSION = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A sealed value longer than this is not even decoded (cookies are capped at 4096 bytes anyway). */
export const MAX_SEALED_CHARS = 64 * 1024;

/** The gateway's sealing key (32 bytes): it never prints, like a Secret. */
export class SealKey extends Redacted {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    super();
    if (key.length !== 32) throw new LatchkeyError('LK_CONFIG_INVALID', `the gateway's sealing key must be 32 bytes (got ${key.length})`);
    this.#key = Buffer.from(key);
  }

  /** Seals `plaintext` for `purpose`. */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return VERSION + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** The plaintext of a value sealed for `purpose`, or undefined when it does not open (forged, tampered, other purpose, other key). */
  open(sealed: string, purpose: string): string | undefined {
    if (typeof sealed !== 'string' || !sealed.startsWith(VERSION) || sealed.length > MAX_SEALED_CHARS) return undefined;
    const text = sealed.slice(VERSION.length);
    if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
    const raw = Buffer.from(text, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(purpose, 'utf8'));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** Opens and parses JSON; undefined when it does not open or is not a JSON object. */
  openJson(sealed: string, purpose: string): Record<string, unknown> | undefined {
    const text = this.open(sealed, purpose);
    if (text === undefined) return undefined;
    try {
      const v = JSON.parse(text) as unknown;
      return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The key file under LATCHKEY_HOME. */
export const KEY_FILE = 'gateway.key';

/** A key from a secret's text: 32 bytes as base64 / base64url (44 or 43 characters) or hex (64). */
export function sealKeyFromSecret(secret: Secret, what = 'the gateway sealing key'): SealKey {
  const text = secret.reveal().trim();
  let raw: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(text)) raw = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) raw = Buffer.from(text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
  if (raw?.length !== 32) throw new LatchkeyError('LK_CONFIG_INVALID', `${what} must be 32 random bytes, base64 or hex encoded (e.g. \`openssl rand -base64 32\`)`);
  return new SealKey(raw);
}

/**
 * The key kept at `<home>/gateway.key` (0600), created on first start. Creation is atomic and
 * never clobbers: the new key is written to a private temp file, fsync'd, then hard-linked to
 * the final name (link(2) fails with EEXIST when another process got there first); the loser
 * reads the winner's file. So two gateways started at the same instant end up with one key.
 */
export async function loadOrCreateKeyFile(home: string): Promise<SealKey> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const path = join(home, KEY_FILE);
  const existing = await readKeyFile(path);
  if (existing) return existing;
  const tmp = join(home, `.${KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${randomBytes(32).toString('base64url')}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      await unlink(tmp).catch(() => undefined);
      throw new LatchkeyError('LK_STORE_IO', `cannot create the gateway key ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  const key = await readKeyFile(path);
  if (!key) throw new LatchkeyError('LK_STORE_IO', `the gateway key ${path} vanished right after it was created`);
  return key;
}

async function readKeyFile(path: string): Promise<SealKey | undefined> {
  let text: string;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new LatchkeyError('LK_STORE_PERMISSIONS', `the gateway key ${path} is not a regular file`);
      if ((st.mode & 0o077) !== 0) throw new LatchkeyError('LK_STORE_PERMISSIONS', `the gateway key ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
      if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new LatchkeyError('LK_STORE_PERMISSIONS', `the gateway key ${path} belongs to another user`);
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return sealKeyFromSecret(new Secret(text), `the gateway key ${path}`);
}

