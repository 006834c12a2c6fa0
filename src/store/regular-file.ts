/**
 * Reading files that hold credentials or settings without hanging or exhausting memory: only a
 * regular file is read (a FIFO would block the reader until someone writes to it, a device such
 * as /dev/zero never ends), up to a size bound, and, where asked, never through a symbolic link.
 *
 * Pure (no I/O): the async reader (read-file.ts), the sync one the CLI's fast path uses
 * (read-file-sync.ts) and their callers share these rules and messages.
 */

/** The largest file: secret reference we read (a PEM key or a long cookie header is a few KB). */
export const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/** The fields of a Stats the checks read. */
export interface KindStat {
  size: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}

/** Why a file could not be read as a regular file. `code` is an errno name or one of ours. */
export class FileReadError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'FileReadError';
    this.code = code;
  }
}

export interface ReadOptions {
  /** Refuse a larger file (EFBIG). */
  maxBytes?: number;
  /** Refuse a symbolic link as the last component (ELOOP). */
  noFollow?: boolean;
}

export function describeKind(st: KindStat): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isFile()) return 'a regular file';
  return 'a device';
}

/** Why `path` (already opened, `st` from fstat) may not be read, or undefined. */
export function regularFileProblem(path: string, st: KindStat, maxBytes?: number): FileReadError | undefined {
  if (!st.isFile()) return new FileReadError('ENOTREG', `${path} is ${describeKind(st)}, not a regular file`);
  if (maxBytes !== undefined && st.size > maxBytes) return new FileReadError('EFBIG', `${path} is larger than ${maxBytes} bytes`);
  return undefined;
}

/** A short reason for a failed open/read: our message, or the errno name. */
export function readFailure(err: unknown): string {
  if (err instanceof FileReadError) return err.message;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ELOOP') return 'a symbolic link (refused)';
  return code ?? String(err);
}
