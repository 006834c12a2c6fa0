/** Throw-away LATCHKEY_HOME profiles for benchmarks. */
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLatchkey, type GrantInput } from '../../src/index.js';

export interface BenchOAuthSource {
  tokenEndpoint: string;
  clientId: string;
  skewSeconds?: number;
}

export interface BenchHome {
  home: string;
  remove(): Promise<void>;
}

/**
 * Creates a private (0700) temp directory with a `config.json` declaring `sources`
 * (the config file format of src/config/schema.ts).
 */
export async function makeHome(prefix: string, sources: Record<string, { oauth?: BenchOAuthSource; token?: { secret: string } }>): Promise<BenchHome> {
  const home = await mkdtemp(join(tmpdir(), `latchkey-bench-${prefix}-`));
  await chmod(home, 0o700);
  await writeFile(join(home, 'config.json'), `${JSON.stringify({ version: 1, sources }, null, 2)}\n`, { mode: 0o600 });
  return {
    home,
    remove: () => rm(home, { recursive: true, force: true }),
  };
}

/** Installs a grant through the library (same path as `latchkey import`), validating the config once. */
export async function installGrant(home: string, source: string, grant: GrantInput): Promise<void> {
  const lk = await openLatchkey({ home });
  try {
    await lk.installGrant(source, grant);
  } finally {
    await lk.close();
  }
}
