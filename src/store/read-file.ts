import { open } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { openFlags } from './read-file-sync.js';
import { regularFileProblem, type ReadOptions } from './regular-file.js';

/**
 * Reads a regular file: opened without blocking on a FIFO (and, with `noFollow`, refusing a
 * symbolic link), checked with fstat on the opened file (no race between check and read), and
 * bounded by `maxBytes`. Throws the open's errno error (ENOENT, EACCES, ELOOP…) or a
 * FileReadError (ENOTREG, EFBIG).
 */
export async function readRegularFile(path: string, options: ReadOptions = {}): Promise<{ text: string; stat: Stats }> {
  const fh = await open(path, openFlags(options));
  try {
    const st = await fh.stat();
    const problem = regularFileProblem(path, st, options.maxBytes);
    if (problem) throw problem;
    return { text: await fh.readFile('utf8'), stat: st };
  } finally {
    await fh.close();
  }
}

/**
 * Like {@link readRegularFile}, but the bytes are read only when `unchanged(stat)` says the
 * opened file is not the one the caller already holds (a cache keyed by inode, size and times).
 */
export async function readRegularFileIfChanged(path: string, options: ReadOptions, unchanged: (st: Stats) => boolean): Promise<{ text: string | undefined; stat: Stats }> {
  const fh = await open(path, openFlags(options));
  try {
    const st = await fh.stat();
    const problem = regularFileProblem(path, st, options.maxBytes);
    if (problem) throw problem;
    return { text: unchanged(st) ? undefined : await fh.readFile('utf8'), stat: st };
  } finally {
    await fh.close();
  }
}
