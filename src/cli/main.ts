import { ExitCode, LatchkeyError } from '../core/errors.js';
import { didYouMean } from '../text/closest-name.js';
import { processIO, reportError, type CliIO, type Command } from './io.js';

/**
 * The `latchkey` command. Each command lives in its own module and is imported only when
 * run, so `latchkey token` loads nothing it does not use.
 */
const commands: Record<string, () => Promise<{ command: Command }>> = {
  init: () => import('./commands/init.js'),
  add: () => import('./commands/add.js'),
  import: () => import('./commands/import.js'),
  token: () => import('./commands/token.js'),
  exec: () => import('./commands/exec.js'),
  status: () => import('./commands/status.js'),
  fetch: () => import('./commands/fetch.js'),
  preflight: () => import('./commands/preflight.js'),
  login: () => import('./commands/login.js'),
  logout: () => import('./commands/logout.js'),
  remove: () => import('./commands/remove.js'),
  keeper: () => import('./commands/keeper.js'),
  health: () => import('./commands/health.js'),
  service: () => import('./commands/service.js'),
  secrets: () => import('./commands/secrets.js'),
  migrate: () => import('./commands/migrate.js'),
  gateway: () => import('./commands/gateway.js'),
  store: () => import('./commands/store.js'),
  'rotate-key': () => import('./commands/rotate-key.js'),
};

/** Registers a command (used by modules that add commands). */
export function commandNames(): string[] {
  return Object.keys(commands);
}

async function mainHelp(io: CliIO): Promise<number> {
  const lines = ['latchkey: keeps API credentials alive for automations', '', 'Usage: latchkey <command> [options]   (latchkey <command> --help for details)', '', 'Commands:'];
  for (const [name, load] of Object.entries(commands)) {
    const { command } = await load();
    lines.push(`  ${name.padEnd(11)} ${command.summary}`);
  }
  lines.push('', 'Environment: LATCHKEY_HOME selects the profile directory (config, store, health).');
  lines.push('             LATCHKEY_STORE=postgres://… keeps grants in PostgreSQL (latchkey migrate once; LATCHKEY_MASTER_KEY seals them).');
  lines.push('Exit codes: 0 ok, 1 usage/config error, 3 unreachable or transient, 4 operator action required.');
  io.stdout.write(`${lines.join('\n')}\n`);
  return ExitCode.ok;
}

/** The package's version (package.json, two levels above dist/src/cli). */
async function version(): Promise<string> {
  const { createRequire } = await import('node:module');
  return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
}

/** The spellings people try for the version, all answered alike. */
const VERSION_WORDS = new Set(['--version', '-V', '-v', 'version']);

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    if (name === 'help' && rest[0] && commands[rest[0]]) return main([rest[0], '--help'], io);
    return mainHelp(io);
  }
  if (VERSION_WORDS.has(name)) {
    io.stdout.write(`${await version()}\n`);
    return ExitCode.ok;
  }
  const load = commands[name];
  if (!load) {
    const names = [...Object.keys(commands), 'help', 'version'];
    io.stderr.write(`latchkey: unknown command "${name}"${didYouMean(name, names)}\nusage: latchkey <command> [options]; commands: ${Object.keys(commands).join(', ')} (latchkey --help for details)\n`);
    return ExitCode.usage;
  }
  let command: Command | undefined;
  try {
    ({ command } = await load());
    if (rest.includes('--help') || rest.includes('-h')) {
      // `exec` passes everything after `--` to the child; only flags before it are ours.
      const dd = rest.indexOf('--');
      const own = dd === -1 ? rest : rest.slice(0, dd);
      if (own.includes('--help') || own.includes('-h')) {
        io.stdout.write(`${command.summary}\n\nUsage: ${command.usage}\n`);
        return ExitCode.ok;
      }
    }
    return await command.run(rest, io);
  } catch (err) {
    const usage = command ? argumentError(name, command, err) : undefined;
    if (usage !== undefined) {
      io.stderr.write(usage);
      return ExitCode.usage;
    }
    return reportError(await withSourceFix(err, io), io);
  }
}

/**
 * node:util parseArgs' errors, said our way: which option, the nearest known one, and the
 * command's usage (the options are read from the usage text, so the two cannot disagree).
 * Undefined for any other error.
 */
function argumentError(name: string, command: Command, err: unknown): string | undefined {
  const e = err as { code?: string; message?: string };
  const usage = `usage: ${command.usage}\n`;
  if (e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /'(-[^']*)'/.exec(e.message ?? '')?.[1] ?? 'an option';
    const known = new Set(command.usage.match(/--[a-z][a-z-]*/g) ?? []);
    known.add('--help');
    return `latchkey ${name}: unknown option ${option}${didYouMean(option, known, (s) => s)}\n${usage}`;
  }
  if (e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = /'(--?[a-z][a-z-]*)/i.exec(e.message ?? '')?.[1];
    return `latchkey ${name}: ${option ? `${option} ` : ''}${/argument missing/.test(e.message ?? '') ? 'needs a value' : 'takes no value'}\n${usage}`;
  }
  if (e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `latchkey ${name}: takes no arguments besides its options\n${usage}`;
  }
  return undefined;
}

/**
 * An error carries the generic fix when it was built without the source's config (e.g. "no
 * grant stored" deep in the engine says `latchkey login x`): the config decides the real one.
 */
async function withSourceFix(err: unknown, io: CliIO): Promise<unknown> {
  if (!(err instanceof LatchkeyError) || !err.source || !err.operatorAction) return err;
  try {
    const [{ loadConfig }, { homePaths, latchkeyHome }, { sourceAwareFix }] = await Promise.all([
      import('../config/load.js'),
      import('../paths.js'),
      import('../config/source-fix.js'),
    ]);
    const config = await loadConfig(homePaths(latchkeyHome(io.env)).config);
    const fix = sourceAwareFix(err.source, config.sources.get(err.source), err.operatorAction, err.fix, config.file);
    if (fix === err.fix) return err;
    return new LatchkeyError(err.code, err.message, { source: err.source, operatorAction: err.operatorAction, exitCode: err.exitCode, fix, cause: err.cause });
  } catch {
    return err; // the config cannot be read: the error as it was
  }
}
