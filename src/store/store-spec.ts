import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { expandTilde } from '../paths.js';
import { FileStore } from './file-store.js';
import type { Store } from './store.js';

/** A store named on the command line: a PostgreSQL URL, a store file, or a profile directory. */
export type StoreSpec = { kind: 'postgres'; url: string } | { kind: 'file'; path: string };

/** `postgres://…` / `postgresql://…` is a database; anything else a path (a directory means its `store.json`). */
export async function parseStoreSpec(spec: string, label: string): Promise<StoreSpec> {
  if (spec.trim() === '') throw new LatchkeyError('LK_USAGE', `${label} needs a store: a file (store.json or a LATCHKEY_HOME directory) or a postgres:// URL`);
  if (/^postgres(ql)?:\/\//i.test(spec)) return { kind: 'postgres', url: spec };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new LatchkeyError('LK_USAGE', `${label}: ${spec.slice(0, spec.indexOf(':'))}:// is not a store; give a file (store.json or a LATCHKEY_HOME directory) or a postgres:// URL`);
  }
  const path = resolve(expandTilde(spec));
  const st = await stat(path).catch(() => undefined);
  return { kind: 'file', path: st?.isDirectory() ? join(path, 'store.json') : path };
}

/** Whether a file store's document exists (a missing origin is an error, a missing destination is created). */
export async function fileStoreExists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/**
 * Opens the store a spec names. PostgreSQL stores are opened through `openPostgres` (given by
 * the caller, so this module does not load `pg` for a file copy).
 */
export async function openStoreSpec(spec: StoreSpec, openPostgres: (url: string) => Promise<Store>): Promise<Store> {
  if (spec.kind === 'postgres') return openPostgres(spec.url);
  return new FileStore({ path: spec.path });
}
