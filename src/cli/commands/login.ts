import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { loginFlowOf, loginNeeds, importCommandFor } from '../../config/source-fix.js';
import type { ResolvedSource } from '../../config/resolve.js';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { openLatchkey } from '../../latchkey.js';
import type { LoginResult } from '../../login/login-grant.js';
import { sanitizeRemoteText } from '../../core/sanitize.js';
import { usageError, type CliIO, type Command } from '../io.js';

/** 128 + SIGINT (2): what a shell reports for a command ended by Ctrl-C. */
const EXIT_SIGINT = 130;

const options = {
  device: { type: 'boolean' },
  'no-browser': { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export const command: Command = {
  summary: 'log in to a source (browser: authorization code + PKCE; --device: device code)',
  usage: `latchkey login <source> [--no-browser] [--timeout <seconds>]   (browser login, loopback redirect on 127.0.0.1)
       latchkey login <source> --device                               (device code: approve on another device)
  --no-browser     print the URL instead of opening a browser (also: LATCHKEY_NO_BROWSER=1, or stdout not a terminal)
  --timeout <s>    how long to wait for the browser to come back (default 300)
  Exit codes: 0 logged in, 1 usage or config error, 3 IdP unreachable, 4 login denied, failed or timed out, 130 cancelled (Ctrl-C).`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    const [source, ...extra] = positionals;
    if (!source || extra.length) throw usageError(`expected exactly one source name\nusage: ${this.usage}`);
    let timeoutMs: number | undefined;
    if (values.timeout !== undefined) {
      const s = Number(values.timeout);
      if (!Number.isFinite(s) || s <= 0 || s > 86_400) throw usageError('--timeout takes a number of seconds (greater than 0, at most 86400)');
      timeoutMs = Math.round(s * 1000);
    }
    if (values.device && values.timeout !== undefined) throw usageError('--timeout applies to the browser login; a device login ends when its code expires');

    const lk = await openLatchkey({ env: io.env });
    const abort = new AbortController();
    const onSigint = (): void => abort.abort();
    process.once('SIGINT', onSigint);
    const spinner = new Spinner(io);
    try {
      cannotLogIn(source, lk.source(source), values.device === true);
      let result: LoginResult;
      if (values.device) {
        const { loginWithDeviceCode } = await import('../../login/device-authorization.js');
        result = await loginWithDeviceCode(lk, source, {
          signal: abort.signal,
          onPrompt(prompt) {
            const lines = [
              `To sign in to "${source}", open ${sanitizeRemoteText(prompt.verificationUri, 500)} on any device and enter the code:`,
              '',
              `    ${sanitizeRemoteText(prompt.userCode, 64)}`,
              '',
            ];
            if (prompt.verificationUriComplete) lines.push(`(or open ${sanitizeRemoteText(prompt.verificationUriComplete, 500)} directly)`);
            lines.push(`The code expires in ${formatDuration(prompt.expiresIn * 1000)}.`);
            io.stderr.write(`${lines.join('\n')}\n`);
            spinner.start('Waiting for approval', prompt.expiresAt);
          },
        });
      } else {
        const { loginWithAuthorizationCode } = await import('../../login/authorization-code.js');
        const browser = browserAllowed(values['no-browser'] === true, io);
        result = await loginWithAuthorizationCode(lk, source, {
          timeoutMs,
          signal: abort.signal,
          onUrl(url, info) {
            io.stderr.write(
              browser
                ? `Opening a browser to sign in to "${source}". If it does not open, visit:\n\n  ${url}\n\n`
                : `To sign in to "${source}", open this URL in a browser on this machine:\n\n  ${url}\n\n`,
            );
            spinner.start('Waiting for the sign-in in the browser', info.deadline);
          },
          openUrl: browser ? (url) => openBrowser(url, io) : undefined,
        });
      }
      spinner.stop();
      io.stdout.write(`${describeLogin(result)}\n`);
      return ExitCode.ok;
    } catch (err) {
      // Ctrl-C is the person's choice, not a failure to fix: the shell's convention, 128 + SIGINT.
      if (abort.signal.aborted) {
        spinner.stop();
        io.stderr.write(`latchkey: login to "${source}" cancelled; nothing was stored\n`);
        return EXIT_SIGINT;
      }
      throw err;
    } finally {
      spinner.stop();
      process.off('SIGINT', onSigint);
      await lk.close();
    }
  },
};

/**
 * Refuses, before any network call, a login that cannot run for this source's config, with the
 * commands that make it possible (src/config/source-fix.ts decides, as for every suggested fix).
 */
function cannotLogIn(source: string, src: ResolvedSource, device: boolean): void {
  if (!src.oauth) return; // the login module says "no oauth method" with its own fix
  const o = src.oauth;
  const fail = (what: string, fix: string): never => {
    throw new LatchkeyError('LK_CONFIG_INVALID', `cannot log in to "${source}": ${what}`, { source, operatorAction: 'fix_config', fix });
  };
  if (device) {
    if (!o.deviceAuthorizationEndpoint && !o.issuer) {
      fail(
        'no device authorization endpoint (sources.' + source + '.oauth.deviceAuthorizationEndpoint is not set, and no issuer to discover it)',
        `latchkey add ${source} --device-authorization-endpoint <url>${loginFlowOf(src) === 'browser' ? `, or without --device: latchkey login ${source}` : `; or: ${importCommandFor(source)}`}`,
      );
    }
    return;
  }
  if (loginFlowOf(src) === 'browser') return;
  if (loginFlowOf(src) === 'device') fail('no authorization endpoint for a browser login; this source has a device authorization endpoint', `latchkey login ${source} --device`);
  fail(`no authorization endpoint (sources.${source}.oauth.authorizationEndpoint is not set, and no issuer to discover it)`, loginNeeds(source).replace(/^login needs --authorization-endpoint or --issuer: /, ''));
}

function describeLogin(r: LoginResult): string {
  const how = r.flow === 'device_code' ? 'device code' : 'browser, authorization code + PKCE';
  const parts = [how, `refresh token: ${r.hasRefreshToken ? 'yes' : 'no'}`];
  if (r.expiresAt !== undefined) parts.push(`access token expires ${new Date(r.expiresAt).toISOString()}`);
  if (r.scope) parts.push(`scope "${r.scope}"`);
  return `logged in to "${r.source}" (${parts.join('; ')})`;
}

function isTTY(stream: NodeJS.WritableStream): boolean {
  return (stream as NodeJS.WritableStream & { isTTY?: boolean }).isTTY === true;
}

/** Opens a browser only for a person at a terminal: never with --no-browser, LATCHKEY_NO_BROWSER=1, or stdout redirected. */
export function browserAllowed(noBrowser: boolean, io: CliIO): boolean {
  if (noBrowser || io.env.LATCHKEY_NO_BROWSER === '1') return false;
  if (!isTTY(io.stdout)) return false;
  return browserCommand(io.env, 'about:blank') !== undefined;
}

/**
 * The command that opens a URL: `$BROWSER` (the first of its colon-separated entries, `%s`
 * replaced by the URL), else the platform's opener. On Linux without a display there is none.
 * Arguments are passed without a shell, so nothing in the URL is interpreted.
 */
export function browserCommand(env: NodeJS.ProcessEnv, url: string, platform: NodeJS.Platform = process.platform): { file: string; args: string[] } | undefined {
  const fromEnv = env.BROWSER?.split(':').map((s) => s.trim()).find((s) => s !== '');
  if (fromEnv) {
    const words = fromEnv.split(/\s+/);
    const hasPlaceholder = words.some((w) => w.includes('%s'));
    const args = words.slice(1).map((w) => w.replaceAll('%s', url));
    return { file: words[0]!, args: hasPlaceholder ? args : [...args, url] };
  }
  if (platform === 'darwin') return { file: 'open', args: [url] };
  // `start` goes through cmd.exe, which would interpret `&` in the URL; this opener does not.
  if (platform === 'win32') return { file: 'rundll32.exe', args: ['url.dll,FileProtocolHandler', url] };
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined;
  return { file: 'xdg-open', args: [url] };
}

/** Starts the browser; never rejects (the URL is printed either way). */
async function openBrowser(url: string, io: CliIO): Promise<void> {
  const cmd = browserCommand(io.env, url);
  if (!cmd) return;
  await new Promise<void>((resolve) => {
    const child = spawn(cmd.file, cmd.args, { stdio: 'ignore', detached: true, env: io.env });
    child.once('error', (err: NodeJS.ErrnoException) => {
      io.stderr.write(`could not start a browser (${cmd.file}: ${err.code ?? err.message}); open the URL above yourself\n`);
      resolve();
    });
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}

function formatDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return m > 0 ? `${m}:${String(s).padStart(2, '0')} min` : `${s} s`;
}

/** A one-line spinner with a countdown on stderr, only when stderr is a terminal. */
class Spinner {
  static readonly frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  readonly #io: CliIO;
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;

  constructor(io: CliIO) {
    this.#io = io;
  }

  start(label: string, deadline: number): void {
    if (!isTTY(this.#io.stderr) || this.#timer) return;
    const render = (): void => {
      const frame = Spinner.frames[this.#frame++ % Spinner.frames.length];
      this.#io.stderr.write(`\r\x1b[K${frame} ${label} (${formatDuration(deadline - Date.now())} left, Ctrl-C to cancel)`);
    };
    render();
    this.#timer = setInterval(render, 120);
    this.#timer.unref();
  }

  stop(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#io.stderr.write('\r\x1b[K');
  }
}
