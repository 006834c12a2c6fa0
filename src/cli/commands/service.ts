import { ExitCode } from '../../core/errors.js';
import { parseArgs } from 'node:util';
import { usageError, type Command } from '../io.js';

/** `latchkey service install|uninstall|status [--print]`: wraps src/service/service.ts. */
export const command: Command = {
  summary: 'install, remove or inspect the keeper as a user service (systemd on Linux, launchd on macOS)',
  usage: [
    'latchkey service install [--print] [-- <keeper options>]   e.g. -- --interval 120 --port 7879',
    '       latchkey service uninstall',
    '       latchkey service status [--json]',
    '',
    '  --print   write the unit / plist to stdout and change nothing',
    'The service runs `latchkey keeper` with the current LATCHKEY_HOME written into its definition.',
  ].join('\n'),
  async run(args, io) {
    const dd = args.indexOf('--');
    const own = dd === -1 ? args : args.slice(0, dd);
    const keeperArgs = dd === -1 ? [] : args.slice(dd + 1);
    const { values, positionals } = parseArgs({ args: own, allowPositionals: true, options: { print: { type: 'boolean' }, json: { type: 'boolean' } } });
    const [action, extra] = positionals;
    if (extra !== undefined || (action !== 'install' && action !== 'uninstall' && action !== 'status')) {
      throw usageError('usage: latchkey service install|uninstall|status [--print]');
    }
    if (values.print && action !== 'install') throw usageError('--print goes with `latchkey service install`');
    if (keeperArgs.length && action !== 'install') throw usageError('keeper options after `--` go with `latchkey service install`');
    // (`--token` is fine there: the unit holds the secret *reference*, never the token.)
    if (keeperArgs.includes('--once')) throw usageError('a service runs the keeper continuously: --once does not belong in it');
    const service = await import('../../service/service.js');
    const common = { env: io.env, stdout: io.stdout };
    if (action === 'install') {
      const r = await service.installService({ ...common, print: values.print, args: keeperArgs });
      if (values.print) return ExitCode.ok;
      io.stdout.write(`${r.message}\n`);
      return r.activated ? ExitCode.ok : ExitCode.unreachable;
    }
    if (action === 'uninstall') {
      const r = await service.uninstallService(common);
      io.stdout.write(`${r.message}\n`);
      return r.deactivated ? ExitCode.ok : ExitCode.unreachable;
    }
    const r = await service.serviceStatus(common);
    io.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${r.message}\n`);
    return r.installed && r.active !== false ? ExitCode.ok : ExitCode.unreachable;
  },
};
