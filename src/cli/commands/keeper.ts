import { parseArgs } from 'node:util';
import { systemClock } from '../../core/clock.js';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { intFlag as int, usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'run the keeper: refresh ahead, probe every source, health.json, dashboard, metrics, alerts',
  usage: [
    'latchkey keeper [--interval <seconds>] [--port <n>] [--host <addr>] [--once] [--standby]',
    '                       [--allow-remote --token <secret-ref>] [--concurrency <n>] [--probe-timeout <ms>]',
    '',
    'Defaults come from the config\'s "keeper" section, else: --interval 300, --port 7878, --host 127.0.0.1.',
    '  --once           one cycle (write health.json, send alerts), no HTTP server; exit 0/3/4 like preflight',
    '  --standby        if another keeper runs for this LATCHKEY_HOME, wait and take over when it stops',
    '  --allow-remote   serve on a non-loopback --host; needs --token',
    '  --token <ref>    require Authorization: Bearer <token> on every data route (env:NAME, file:/path or',
    '                   keyring:service/account); mandatory with --allow-remote, and worth it on loopback too',
    '                   on a machine shared with other users (any local user can reach 127.0.0.1)',
    'Logs: one JSON object per line on stderr. Stop with Ctrl-C or SIGTERM (finishes the write in progress).',
    'SIGHUP, or saving config.json, reloads the sources without a restart (a broken config keeps the last good one).',
    'A port in use does not stop it: it keeps every source alive without its dashboard and retries the port.',
    'Smallest footprint (what `latchkey service install` runs): node --optimize-for-size <path of latchkey> keeper',
  ].join('\n'),
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        interval: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'allow-remote': { type: 'boolean' },
        token: { type: 'string' },
        once: { type: 'boolean' },
        standby: { type: 'boolean' },
        concurrency: { type: 'string' },
        'probe-timeout': { type: 'string' },
      },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"; usage: latchkey keeper [options]`);
    const [{ startKeeperDaemon }, { keepKeeperHeapSmall }] = await Promise.all([import('../../keeper/daemon.js'), import('../../keeper/heap-settings.js')]);
    keepKeeperHeapSmall();
    const { jsonLineLog } = await import('../../keeper/log.js');
    const log = jsonLineLog(io.stderr, systemClock);

    const standby = new AbortController();
    let stopRequested = false;
    let stop: (() => Promise<number>) | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopRequested) {
        log('warn', 'forced_exit', { signal, message: 'second signal: exiting without waiting' });
        process.exit(ExitCode.interrupted);
      }
      stopRequested = true;
      log('info', 'signal', { signal, message: 'stopping (send the signal again to exit at once)' });
      standby.abort();
      void stop?.();
    };
    let reload: (() => Promise<boolean>) | undefined;
    // SIGHUP reloads the config, as daemons do (nginx, sshd); the keeper's own log says how it went.
    // Before the keeper runs (standing by for the lock) there is nothing to reload yet.
    const onHangup = (): void => {
      log('info', 'signal', { signal: 'SIGHUP', message: reload ? 'reloading the config' : 'not running yet: nothing to reload' });
      void reload?.();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onHangup);
    try {
      let daemon;
      try {
        daemon = await startKeeperDaemon({
          env: io.env,
          intervalSeconds: int('--interval', values.interval, 1, 86_400),
          port: int('--port', values.port, 0, 65_535),
          host: values.host,
          allowRemote: values['allow-remote'],
          tokenRef: values.token,
          concurrency: int('--concurrency', values.concurrency, 1, 1024),
          probeTimeoutMs: int('--probe-timeout', values['probe-timeout'], 100, 600_000),
          once: values.once,
          standby: values.standby,
          signal: standby.signal,
          log,
        });
      } catch (err) {
        if (stopRequested && err instanceof LatchkeyError && err.code === 'LK_KEEPER' && err.exitCode === ExitCode.ok) return ExitCode.ok;
        throw err;
      }
      const d = daemon;
      stop = () => d.stop(0);
      reload = () => d.reload();
      if (stopRequested) void stop();
      if (d.http && (io.stdout as { isTTY?: boolean }).isTTY) {
        io.stdout.write(`Latchkey keeper: dashboard at ${d.http.url}/ — Ctrl-C to stop\n`);
      }
      return await d.done;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onHangup);
    }
  },
};
