import { parseArgs } from 'node:util';
import { ExitCode } from '../../core/errors.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { intFlag as int, usageError, type Command } from '../io.js';

export const command: Command = {
  summary: 'run the session gateway in front of a web app: login, sealed cookies, transparent refresh, ws tickets, forward-auth',
  usage: [
    'latchkey gateway --upstream <url> --issuer <url> --client-id <id> [--client-secret <ref>] [--port <n>] [--host <addr>]',
    '                        [--trusted-proxy <cidr>]... [--public <path-prefix>]...',
    '',
    'Defaults come from the config\'s "gateway" section (flags win), else --host 127.0.0.1 --port 0 (any free port).',
    '  --upstream <url>       where signed-in requests go (HTTP and WebSocket)',
    '  --issuer <url>         the OpenID Provider (discovery); register <public origin>[prefix]/auth/callback as redirect URI',
    '  --client-secret <ref>  env:NAME, file:/path or keyring:service/account (none: a public client)',
    '  --trusted-proxy <cidr> believe X-Forwarded-Proto/-Host/-Prefix/-For from these peers only (repeatable)',
    '  --public <prefix>      serve paths under this prefix without a session (repeatable)',
    'Prints one line when ready: latchkey gateway listening on http://<host>:<port>. Logs: JSON lines on stderr.',
    'Stop with Ctrl-C or SIGTERM (requests in flight finish). Several gateways on one LATCHKEY_HOME share sessions.',
  ].join('\n'),
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        upstream: { type: 'string' },
        issuer: { type: 'string' },
        'client-id': { type: 'string' },
        'client-secret': { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'trusted-proxy': { type: 'string', multiple: true },
        public: { type: 'string', multiple: true },
      },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"; usage: latchkey gateway --upstream <url> --issuer <url> --client-id <id>`);
    const home = latchkeyHome(io.env);
    const { loadConfig } = await import('../../config/load.js');
    const config = await loadConfig(homePaths(home).config, { allowMissing: true });
    const section = config.raw.gateway ?? {};
    const upstream = values.upstream ?? section.upstream;
    const issuer = values.issuer ?? section.issuer;
    const clientId = values['client-id'] ?? section.clientId;
    if (!upstream) throw usageError('latchkey gateway needs --upstream <url> (or "gateway.upstream" in the config)');
    if (!issuer) throw usageError('latchkey gateway needs --issuer <url> (or "gateway.issuer" in the config)');
    if (!clientId) throw usageError('latchkey gateway needs --client-id <id> (or "gateway.clientId" in the config)');
    const clientSecret = values['client-secret'] ?? section.clientSecret;
    if (clientSecret !== undefined) {
      const { secretRefProblem } = await import('../../config/constants.js');
      const problem = secretRefProblem(clientSecret);
      if (problem) throw usageError(`--client-secret: ${problem}`);
    }
    const { startGateway } = await import('../../gateway/server.js');
    const running = await startGateway({
      home,
      env: io.env,
      upstream,
      issuer,
      clientId,
      clientSecret,
      clientAuth: section.clientAuth,
      host: values.host ?? section.host,
      port: int('--port', values.port, 0, 65_535) ?? section.port,
      trustedProxies: values['trusted-proxy'] ?? section.trustedProxies,
      publicPaths: values.public ?? section.publicPaths,
      scopes: section.scopes,
      sealKey: section.sealKey,
      refreshTokenLifetimeSeconds: section.refreshTokenLifetimeSeconds,
      refreshSkewSeconds: section.refreshSkewSeconds,
      postLogoutRedirectUri: section.postLogoutRedirectUri,
      upstreamCsrf: section.upstreamCsrf,
      loginRateLimit: section.loginRateLimit,
    });
    io.stdout.write(`latchkey gateway listening on ${running.url}\n`);
    return new Promise<number>((resolve) => {
      let stopping = false;
      // First signal: stop accepting, let requests in flight finish. A second one: exit at once.
      const stop = (): void => {
        if (stopping) process.exit(ExitCode.interrupted);
        stopping = true;
        void running.close().then(() => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(ExitCode.ok);
        });
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};
