import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/...). */
export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** The executable users run (package.json `bin`): the CommonJS entry with the fast path (scripts/bundle-cli.mjs). */
export const cliPath = join(repoRoot, 'dist', 'src', 'cli', 'latchkey.cjs');
/** The tsc output of the same entry (ES modules): what runs when the bundle was not built. */
export const esmCliPath = join(repoRoot, 'dist', 'src', 'cli', 'bin.js');

export interface TempHome {
  home: string;
  configPath: string;
  storePath: string;
  cleanup(): Promise<void>;
}

/** A fresh LATCHKEY_HOME (mode 0700) with the given config written as config.json. */
export async function makeHome(config?: unknown): Promise<TempHome> {
  const base = await mkdtemp(join(tmpdir(), 'lk-test-'));
  const home = join(base, 'home');
  await mkdir(home, { mode: 0o700 });
  const configPath = join(home, 'config.json');
  if (config !== undefined) await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return { home, configPath, storePath: join(home, 'store.json'), cleanup: () => rm(base, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a separate process (what a script in any language does); `bin` runs another entry (e.g. esmCliPath). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; bin?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [options.bin ?? cliPath, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_NO_BROWSER: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
