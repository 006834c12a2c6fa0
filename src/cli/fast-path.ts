import { fstatSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { cachedVerdicts, parseKeeperReport, reportOf } from '../client/keeper-report.js';
import { ExitCode } from '../core/errors.js';
import { bearerMethod, type ResolvedSource } from '../config/resolve.js';
import { plainSecretValue } from '../config/secret-value.js';
import { stampedConfig, stampPathFor } from '../config/stamp.js';
import { configuredSkewMs, refreshDueAt, usableGrant } from '../engine/expiry.js';
import { homePaths, latchkeyHome, type HomePaths } from '../paths.js';
import { privateDirProblem, privateFileProblem } from '../store/private-mode.js';
import { readRegularFileSync } from '../store/read-file-sync.js';
import { MAX_SECRET_FILE_BYTES } from '../store/regular-file.js';
import { parseStoreRecord } from '../store/store-document.js';
import { renderPreflight } from './preflight-format.js';
import { colourWanted } from './terminal-table.js';

/**
 * The CLI's synchronous fast path, for the two commands scripts run once per job:
 *
 * - `latchkey token <source>`: the config is unchanged since it was validated (its stamp), and
 *   the source's bearer method is `oauth` with a stored grant that is neither due for refresh
 *   nor revoked, or `token` with an `env:` / `file:` reference that has a value;
 * - `latchkey preflight <source...> [--json]`: the config is unchanged since it was validated
 *   and names every source, and the keeper's fresh report has every named source healthy.
 *
 * It answers only when it can answer exactly as the full command would (same output, byte for
 * byte, same exit code), with the same rules: the pure modules it imports are the ones the
 * full path uses (config resolution and its stamp, expiry, the store document and its
 * permission rules, the keeper report, the preflight printer). Anything else (another
 * command, a flag, a config to validate, a grant to refresh, a keyring reference, a store
 * with loose permissions, any error at all) returns undefined and the full ESM route runs,
 * which produces the real behaviour and messages.
 *
 * Why: the CLI entry (dist/src/cli/latchkey.cjs, bundled by scripts/bundle-cli.mjs) is
 * CommonJS and this path does a few synchronous reads and one write to fd 1, so it starts
 * about as fast as `node -e 0`; the ESM loader (per-module resolve/link), node:fs/promises
 * and the streams stack are what the full route costs. `LATCHKEY_NO_FAST_PATH=1` turns it off.
 */

/** What the command prints on stdout and its exit code. */
export interface FastPathAnswer {
  stdout: string;
  exitCode: number;
}

/**
 * Runs `argv` (without `node` and the script) when the fast path can answer it: prints the
 * answer to fd 1 and returns the exit code. Undefined: nothing was printed, run the full CLI.
 * Throws only when writing the answer fails (stdout closed): the answer is never half printed
 * and then printed again by the full route.
 */
export function tryFastPath(argv: readonly string[], env: NodeJS.ProcessEnv): number | undefined {
  const answer = fastPathAnswer(argv, env);
  if (answer === undefined) return undefined;
  writeStdout(answer.stdout);
  return answer.exitCode;
}

/** The fast path's answer to `argv` without printing it; undefined when the full CLI must answer. Never throws. */
export function fastPathAnswer(argv: readonly string[], env: NodeJS.ProcessEnv): FastPathAnswer | undefined {
  if (env.LATCHKEY_NO_FAST_PATH) return undefined;
  try {
    const [name, ...args] = argv;
    if (name === 'token') return tokenAnswer(args, env);
    if (name === 'preflight') return preflightAnswer(args, env);
    return undefined;
  } catch {
    return undefined;
  }
}

/** Config, stamp and report: regular files only (a FIFO must not hang `latchkey token`). */
const readText = (path: string): string => readRegularFileSync(path).text;
/** A `file:` secret, with resolveSecretRef's rules (regular file, size bound). */
const readSecretFile = (path: string): string => readRegularFileSync(path, { maxBytes: MAX_SECRET_FILE_BYTES }).text;

/** `latchkey token <source>` (src/cli/commands/token.ts → openLatchkey → lk.token). */
function tokenAnswer(args: readonly string[], env: NodeJS.ProcessEnv): FastPathAnswer | undefined {
  const source = args[0];
  if (args.length !== 1 || source === undefined || source.startsWith('-')) return undefined;
  const paths = homePaths(latchkeyHome(env));
  // loadConfig → parseConfig: only a config its stamp vouches for; otherwise the full path
  // validates it (and writes the stamp).
  const config = stampedConfig(readText(paths.config), readText(stampPathFor(paths.config)), paths.config);
  const src = config?.sources.get(source);
  // Another store (PostgreSQL) than the profile's file: the full path reads it.
  if (src === undefined || env.LATCHKEY_STORE || config?.raw.store) return undefined;
  const kind = bearerMethod(src);
  const token = kind === 'oauth' ? freshStoredToken(source, src, paths) : kind === 'token' && src.token ? plainSecretValue(src.token.secret, env, readSecretFile) : undefined;
  return token === undefined ? undefined : { stdout: `${token}\n`, exitCode: ExitCode.ok };
}

/**
 * The stored access token when TokenEngine would hand it out without a refresh: the store
 * passes FileStore's checks and parses, the grant is usable (present, not revoked) and
 * `now < refreshDueAt(grant, skew)`. (The client secret is resolved only for a refresh.)
 */
function freshStoredToken(source: string, src: ResolvedSource, paths: HomePaths): string | undefined {
  const oauth = src.oauth;
  // FileStore's rules: not through a symbolic link, a regular file, private to this user.
  const { text, stat } = readRegularFileSync(paths.store, { noFollow: true });
  if (privateDirProblem(dirname(paths.store), statSync(dirname(paths.store))) || privateFileProblem(paths.store, stat)) return undefined;
  const grant = usableGrant(source, parseStoreRecord(text, paths.store, source));
  return Date.now() < refreshDueAt(grant, configuredSkewMs(oauth)) ? grant.accessToken.reveal() : undefined;
}

/** `latchkey preflight <source...> [--json]` answered from the keeper's report (src/cli/commands/preflight.ts). */
function preflightAnswer(args: readonly string[], env: NodeJS.ProcessEnv): FastPathAnswer | undefined {
  const sources: string[] = [];
  let json = false;
  for (const arg of args) {
    if (arg === '--json') json = true;
    else if (arg.startsWith('-')) return undefined; // --live, --budget, --help, anything else
    else sources.push(arg);
  }
  if (sources.length === 0) return undefined;
  const paths = homePaths(latchkeyHome(env));
  // Only for a config its stamp vouches for, naming only its sources: a config that changed (or
  // never passed) is validated by the full command, which refuses an invalid one with exit 1.
  const config = stampedConfig(readText(paths.config), readText(stampPathFor(paths.config)), paths.config);
  if (config === undefined || sources.some((s) => !config.sources.has(s))) return undefined;
  const cached = cachedVerdicts(parseKeeperReport(readText(paths.health), Date.now()), sources);
  if (cached === undefined) return undefined;
  const report = reportOf(cached);
  // A terminal may want colour; telling needs node:tty, which this entry does not load: stdout
  // as a character device (a terminal, or /dev/null) goes the full route. Scripts pipe it.
  if (!json && colourWanted(env, fstatSync(1).isCharacterDevice())) return undefined;
  return { stdout: renderPreflight(report, json), exitCode: report.exitCode };
}

/**
 * Writes all of `text` to fd 1: process.stdout on a pipe would build a net.Socket and the
 * streams stack (~3 ms). If the fd is non-blocking and full (EAGAIN), the rest goes through
 * process.stdout, which finishes writing before the process exits.
 */
function writeStdout(text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(1, buf, off, buf.length - off);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    process.stdout.write(buf.subarray(off));
  }
}
