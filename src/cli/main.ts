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
  keeper: () => import('./commands/keeper.js'),
  health: () => import('./commands/health.js'),
  service: () => import('./commands/service.js'),
  secrets: () => import('./commands/secrets.js'),
};

/** Registers a command (used by modules that add commands). */
export function commandNames(): string[] {
  return Object.keys(commands);
}

async function mainHelp(io: CliIO): Promise<number> {
  const lines = ['latchkey: keeps API credentials alive for automations', '', 'Usage: latchkey <command> [options]   (latchkey <command> --help for details)', '', 'Commands:'];
  for (const [name, load] of Object.entries(commands)) {
    const { command } = await load();
    lines.push(`  ${name.padEnd(10)} ${command.summary}`);
  }
  lines.push('', 'Environment: LATCHKEY_HOME selects the profile directory (config, store, health).');
  lines.push('Exit codes: 0 ok, 1 usage/config error, 3 unreachable or transient, 4 operator action required.');
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    if (name === 'help' && rest[0] && commands[rest[0]]) return main([rest[0], '--help'], io);
    return mainHelp(io);
  }
  if (name === '--version' || name === '-V') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };
    io.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    io.stderr.write(`latchkey: unknown command "${name}". Run \`latchkey --help\` for the list.\n`);
    return 1;
  }
  try {
    const { command } = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      // `exec` passes everything after `--` to the child; only flags before it are ours.
      const dd = rest.indexOf('--');
      const own = dd === -1 ? rest : rest.slice(0, dd);
      if (own.includes('--help') || own.includes('-h')) {
        io.stdout.write(`${command.summary}\n\nUsage: ${command.usage}\n`);
        return 0;
      }
    }
    return await command.run(rest, io);
  } catch (err) {
    return reportError(err, io);
  }
}

