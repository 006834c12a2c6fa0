import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { FileReadError, regularFileProblem, type ReadOptions } from './regular-file.js';

/**
 * Synchronous twin of read-file.ts (for the CLI's fast path, which loads only node:fs): opens
 * without blocking on a FIFO, checks the opened file with fstat, reads it. Throws the open's
 * errno error or a {@link FileReadError}.
 */
export function readRegularFileSync(path: string, options: ReadOptions = {}): { text: string; stat: Stats } {
  const fd = openSync(path, openFlags(options));
  try {
    const st = fstatSync(fd);
    const problem = regularFileProblem(path, st, options.maxBytes);
    if (problem) throw problem;
    return { text: readFileSync(fd, 'utf8'), stat: st };
  } finally {
    closeSync(fd);
  }
}

/** O_RDONLY | O_NONBLOCK (opening a FIFO must not wait for a writer) [| O_NOFOLLOW]. */
export function openFlags(options: ReadOptions): number {
  return constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (options.noFollow ? (constants.O_NOFOLLOW ?? 0) : 0);
}

export { FileReadError };
