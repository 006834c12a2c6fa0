import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, unlink } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfigText } from '../config/load.js';
import { LatchkeyError } from '../core/errors.js';
import { homePaths, latchkeyHome } from '../paths.js';
import { writeFileAtomic } from '../store/atomic-file.js';

/**
 * `latchkey service install|uninstall|status [--print]`: runs `latchkey keeper` as a per-user
 * service — a systemd user unit on Linux, a launchd agent on macOS — with the current
 * LATCHKEY_HOME written into the service definition (so the service never depends on the
 * environment of whatever shell installed it).
 *
 * Nothing here needs root. Every external command goes through an injectable runner so tests
 * never touch the real service manager.
 */

/** Every name, label and path fragment of the installed service, in one place. */
export const SERVICE = {
  /** systemd user unit name. */
  systemdUnit: 'latchkey-keeper.service',
  /** launchd label (reverse-DNS). */
  launchdLabel: 'dev.latchkey.keeper',
  /** launchd plist file name under ~/Library/LaunchAgents. */
  launchdPlist: 'dev.latchkey.keeper.plist',
  /** Human description (systemd Description=). Contains no `%`: systemd expands specifiers there. */
  description: 'Latchkey keeper: keeps API credentials alive',
  /** Subdirectory of LATCHKEY_HOME for launchd's stdout/stderr files. */
  logDir: 'logs',
  stdoutLog: 'keeper.out.log',
  stderrLog: 'keeper.err.log',
  /** The CLI subcommand the service runs. */
  command: 'keeper',
  /**
   * Node options of the service's process. `--optimize-for-size` (a V8 option since long before
   * Node 20; implies a 1 MB young generation and tighter heap growth) keeps a long-running keeper
   * small: at 1,000 sources its peak resident set drops from ~125-145 MB to ~95 MB
   * (bench/keeper-scale), at ~10 % more CPU for a cycle that waits on the network anyway.
   */
  nodeOptions: ['--optimize-for-size'],
  /** Seconds between a crash and the restart (systemd RestartSec=, launchd ThrottleInterval). */
  restartSec: 5,
  /** Seconds the keeper gets after SIGTERM to finish its write and release locks. */
  stopTimeoutSec: 30,
  /** umask 0077: everything the keeper creates is private to the user. */
  umask: 0o077,
} as const;

export interface RenderOptions {
  /** Absolute path of the node binary. */
  execPath: string;
  /** Absolute path of the CLI entry point (dist/src/cli/bin.js). */
  cliPath: string;
  /** LATCHKEY_HOME the keeper runs with (made absolute). */
  home: string;
  /** Extra arguments after `keeper`, e.g. `['--interval', '300']`. */
  args?: string[];
}

// ---------------------------------------------------------------------------------------------
// Rendering

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function assertPrintable(what: string, value: string): void {
  if (CONTROL.test(value)) {
    throw new LatchkeyError('LK_USAGE', `${what} contains a control character (newline, tab, …); a service definition cannot carry it: ${JSON.stringify(value)}`);
  }
}

function absolutePath(what: string, p: string): string {
  assertPrintable(what, p);
  if (!isAbsolute(p)) throw new LatchkeyError('LK_USAGE', `${what} must be an absolute path, got ${JSON.stringify(p)}`);
  // systemd refuses non-normalized executable paths ("/a/./b", "/a//b", trailing "/").
  const n = normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** `%` starts a systemd specifier (`%h`, `%t`, …) in ExecStart=, Environment= and most settings. */
function escapeSpecifiers(s: string): string {
  return s.replace(/%/g, '%%');
}

/**
 * One ExecStart= argument (not the executable): double-quoted, C-escaped (`\\`, `\"`), `%` → `%%`
 * (specifiers) and `$` → `$$` (systemd expands `$VAR` / `${VAR}` in arguments).
 */
export function systemdQuoteArg(value: string): string {
  assertPrintable('a service argument', value);
  const body = escapeSpecifiers(value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')).replace(/\$/g, () => '$$');
  return `"${body}"`;
}

/**
 * The executable of ExecStart=. systemd does not expand `$` there (so it must not be doubled)
 * and rejects executable paths containing `"`, `'` or `\` outright ("Executable name contains
 * special characters"), so those are refused here with a fix rather than written into a unit
 * that will never start.
 */
function systemdQuoteExecutable(path: string): string {
  if (/["'\\]/.test(path)) {
    throw new LatchkeyError(
      'LK_USAGE',
      `systemd cannot run an executable whose path contains a quote or a backslash: ${path}. ` +
        `Fix: link it from a plain path (e.g. ln -s '${path.replace(/'/g, `'\\''`)}' ~/.local/bin/node) and run the install with that node.`,
    );
  }
  return `"${escapeSpecifiers(path)}"`;
}

/** `Environment="NAME=value"`: C-escaped, `%` → `%%`; `$` has no meaning there. */
function systemdEnvironment(name: string, value: string): string {
  assertPrintable(`environment variable ${name}`, value);
  const body = escapeSpecifiers(`${name}=${value}`.replace(/\\/g, '\\\\').replace(/"/g, '\\"'));
  return `Environment="${body}"`;
}

/** A systemd *user* unit running `<node> <node options> <cli> keeper [...args]`. */
export function renderSystemdUnit(opts: RenderOptions): string {
  const execPath = absolutePath('the node binary path', opts.execPath);
  const cliPath = absolutePath('the CLI path', opts.cliPath);
  const home = absolutePath('LATCHKEY_HOME', resolve(opts.home));
  const argv = [systemdQuoteExecutable(execPath), ...SERVICE.nodeOptions, systemdQuoteArg(cliPath), SERVICE.command, ...(opts.args ?? []).map(systemdQuoteArg)];
  return [
    '# Installed by `latchkey service install`; remove with `latchkey service uninstall`.',
    '[Unit]',
    `Description=${SERVICE.description}`,
    // The user manager cannot see the system's network-online.target, so this only orders the
    // start when the target happens to be known; the keeper copes with a missing network itself
    // (sources become `unreachable`, never `action_required`). No Wants=: it would fail to load.
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${argv.join(' ')}`,
    systemdEnvironment('LATCHKEY_HOME', home),
    'Restart=on-failure',
    `RestartSec=${SERVICE.restartSec}`,
    // The keeper finishes the write in progress and releases its locks on SIGTERM.
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${SERVICE.stopTimeoutSec}`,
    `UMask=${SERVICE.umask.toString(8).padStart(4, '0')}`,
    'SyslogIdentifier=latchkey-keeper',
    // Hardening that an unprivileged user manager can apply (prctl / seccomp). The namespace
    // options (PrivateTmp=, ProtectSystem=, ProtectHome=, …) are left out on purpose: in a user
    // unit they imply PrivateUsers= and make the service fail to start on systems that restrict
    // unprivileged user namespaces; ProtectHome= would also hide LATCHKEY_HOME.
    // MemoryDenyWriteExecute= is left out because it breaks V8's JIT.
    'NoNewPrivileges=yes',
    'LockPersonality=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
}

// eslint-disable-next-line no-control-regex
const XML_FORBIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

/** Escapes text for an XML element or attribute; refuses characters XML 1.0 cannot carry. */
export function xmlEscape(value: string): string {
  if (XML_FORBIDDEN.test(value)) {
    throw new LatchkeyError('LK_USAGE', `a control character cannot be written to a plist: ${JSON.stringify(value)}`);
  }
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A launchd agent plist running `<node> <node options> <cli> keeper [...args]`. */
export function renderLaunchdPlist(opts: RenderOptions): string {
  const execPath = absolutePath('the node binary path', opts.execPath);
  const cliPath = absolutePath('the CLI path', opts.cliPath);
  const home = absolutePath('LATCHKEY_HOME', resolve(opts.home));
  const logs = join(home, SERVICE.logDir);
  const argv = [execPath, ...SERVICE.nodeOptions, cliPath, SERVICE.command, ...(opts.args ?? [])];
  const s = (v: string): string => `<string>${xmlEscape(v)}</string>`;
  const k = (v: string): string => `<key>${xmlEscape(v)}</key>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<!-- Installed by `latchkey service install`; remove with `latchkey service uninstall`. -->',
    '<plist version="1.0">',
    '<dict>',
    `  ${k('Label')}`,
    `  ${s(SERVICE.launchdLabel)}`,
    `  ${k('ProgramArguments')}`,
    '  <array>',
    ...argv.map((a) => `    ${s(a)}`),
    '  </array>',
    `  ${k('EnvironmentVariables')}`,
    '  <dict>',
    `    ${k('LATCHKEY_HOME')}`,
    `    ${s(home)}`,
    '  </dict>',
    `  ${k('RunAtLoad')}`,
    '  <true/>',
    // Like systemd's Restart=on-failure: restarted after a crash, not after a clean stop.
    `  ${k('KeepAlive')}`,
    '  <dict>',
    `    ${k('SuccessfulExit')}`,
    '    <false/>',
    '  </dict>',
    `  ${k('ThrottleInterval')}`,
    `  <integer>${SERVICE.restartSec}</integer>`,
    `  ${k('ExitTimeOut')}`,
    `  <integer>${SERVICE.stopTimeoutSec}</integer>`,
    `  ${k('ProcessType')}`,
    `  ${s('Background')}`,
    `  ${k('Umask')}`,
    `  <integer>${SERVICE.umask}</integer>`,
    `  ${k('StandardOutPath')}`,
    `  ${s(join(logs, SERVICE.stdoutLog))}`,
    `  ${k('StandardErrorPath')}`,
    `  ${s(join(logs, SERVICE.stderrLog))}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Install / uninstall / status

export interface CommandResult {
  /** Exit code; 127 when the command does not exist, 128+n when killed by signal n. */
  code: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (cmd: string, args: readonly string[]) => Promise<CommandResult>;

/** Runs a command without a shell; never rejects (a missing binary is code 127). */
export const defaultRunCommand: CommandRunner = (cmd, args) =>
  new Promise((resolvePromise) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const done = (r: CommandResult): void => {
      if (!settled) {
        settled = true;
        resolvePromise(r);
      }
    };
    let child: ReturnType<typeof spawn>;
    try {
      // No `timeout` option: Node keeps its kill timer alive when the spawn fails (ENOENT).
      child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      done({ code: 127, stdout: '', stderr: `${cmd}: ${(err as Error).message}` });
      return;
    }
    const timer = setTimeout(() => {
      stderr += `\n${cmd}: no answer within 60 s, killed`;
      child.kill('SIGKILL');
    }, 60_000);
    timer.unref();
    const finish = (r: CommandResult): void => {
      clearTimeout(timer);
      done(r);
    };
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish({ code: err.code === 'ENOENT' ? 127 : 126, stdout, stderr: stderr || `${cmd}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      const sig = signal ? 128 + (signalNumber(signal) ?? 0) : 1;
      finish({ code: code ?? sig, stdout, stderr });
    });
  });

function signalNumber(signal: NodeJS.Signals): number | undefined {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return table[signal];
}

export type ServicePlatform = 'linux' | 'darwin';

export interface ServiceOptions {
  /** Default `process.platform`. Only linux (systemd) and darwin (launchd) are supported. */
  platform?: NodeJS.Platform;
  /** LATCHKEY_HOME for the keeper; default from `env` (see paths.ts). */
  home?: string;
  /** Write the service definition to `stdout` and touch nothing. */
  print?: boolean;
  stdout?: { write(chunk: string): unknown };
  /** Default `process.env`; used for LATCHKEY_HOME, XDG_CONFIG_HOME, HOME and USER. */
  env?: NodeJS.ProcessEnv;
  /** Default `process.execPath`. */
  execPath?: string;
  /** Default: this package's `dist/src/cli/bin.js`. */
  cliPath?: string;
  /** Extra `latchkey keeper` arguments. */
  args?: string[];
  runCommand?: CommandRunner;
  /** For launchctl's `gui/<uid>` domain; default `process.getuid()`. */
  uid?: number;
  /** The user's home directory (for ~/.config and ~/Library); default `$HOME` or `os.homedir()`. */
  userHome?: string;
}

export interface InstallResult {
  platform: ServicePlatform;
  /** Where the unit / plist is (or would be) written. */
  path: string;
  /** The rendered unit / plist. */
  content: string;
  /** True when the file was written. */
  written: boolean;
  /** True when the service manager accepted it (enabled and started / bootstrapped). */
  activated: boolean;
  /** What happened, and when something could not be done, the exact commands to run by hand. */
  message: string;
}

export interface UninstallResult {
  platform: ServicePlatform;
  path: string;
  /** True when the file existed and was removed. */
  removed: boolean;
  /** True when the service manager stopped/unloaded it (or it was not loaded). */
  deactivated: boolean;
  message: string;
}

export interface StatusResult {
  platform: ServicePlatform;
  path: string;
  /** The unit / plist file exists. */
  installed: boolean;
  /** Enabled to start at login (systemd) / loaded (launchd); null when the manager can't be asked. */
  enabled: boolean | null;
  /** Running now; null when the manager can't be asked. */
  active: boolean | null;
  /** systemd only: whether the user manager outlives the login session; null when unknown. */
  linger: boolean | null;
  message: string;
}

interface Resolved {
  platform: ServicePlatform;
  path: string;
  env: NodeJS.ProcessEnv;
  home: string;
  execPath: string;
  cliPath: string;
  args: string[];
  run: CommandRunner;
  uid: number;
  out: { write(chunk: string): unknown };
}

function defaultCliPath(): string {
  // dist/src/service/service.js → dist/src/cli/bin.js (the executable entry; main.js only exports)
  return fileURLToPath(new URL('../cli/bin.js', import.meta.url));
}

/** Where the unit / plist lives for this user. */
export function servicePath(platform: ServicePlatform, env: NodeJS.ProcessEnv = process.env, userHome?: string): string {
  const uhome = userHome ?? (env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir());
  if (platform === 'darwin') return join(uhome, 'Library', 'LaunchAgents', SERVICE.launchdPlist);
  // XDG base-dir spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  const config = xdg && isAbsolute(xdg) ? xdg : join(uhome, '.config');
  return join(config, 'systemd', 'user', SERVICE.systemdUnit);
}

function resolveOptions(opts: ServiceOptions): Resolved {
  const p = opts.platform ?? process.platform;
  if (p !== 'linux' && p !== 'darwin') {
    throw new LatchkeyError(
      'LK_USAGE',
      `latchkey service supports Linux (systemd user units) and macOS (launchd agents), not ${p}. ` +
        'Run `latchkey keeper` from your platform\'s task scheduler instead.',
    );
  }
  const env = opts.env ?? process.env;
  return {
    platform: p,
    path: servicePath(p, env, opts.userHome),
    env,
    home: resolve(opts.home ?? latchkeyHome(env)),
    execPath: opts.execPath ?? process.execPath,
    cliPath: resolve(opts.cliPath ?? defaultCliPath()),
    args: opts.args ?? [],
    run: opts.runCommand ?? defaultRunCommand,
    uid: opts.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 501),
    out: opts.stdout ?? process.stdout,
  };
}

function render(r: Resolved): string {
  const o: RenderOptions = { execPath: r.execPath, cliPath: r.cliPath, home: r.home, args: r.args };
  return r.platform === 'darwin' ? renderLaunchdPlist(o) : renderSystemdUnit(o);
}

function userName(env: NodeJS.ProcessEnv): string {
  const fromEnv = env.USER || env.LOGNAME;
  if (fromEnv) return fromEnv;
  try {
    return userInfo().username;
  } catch {
    return '$USER';
  }
}

function oneLine(s: string): string {
  return s.trim().split('\n').map((l) => l.trim()).filter(Boolean).join(' / ');
}

/** Why a service-manager command failed, in words an operator can act on. */
function describeFailure(cmd: string, args: readonly string[], r: CommandResult): string {
  const line = `${cmd} ${args.join(' ')}`;
  if (r.code === 127) return `\`${cmd}\` is not installed or not on PATH`;
  const err = oneLine(r.stderr || r.stdout);
  if (cmd === 'systemctl' && /bus|XDG_RUNTIME_DIR|not been booted|Host is down|No medium/i.test(err)) {
    return `the systemd user manager is not reachable from here (\`${line}\`: ${err}); this happens in containers, under sudo/su, or over SSH without a login session`;
  }
  return `\`${line}\` failed (exit ${r.code})${err ? `: ${err}` : ''}`;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function assertRunnable(r: Resolved): void {
  if (!existsSync(r.execPath)) throw new LatchkeyError('LK_USAGE', `node binary not found: ${r.execPath}`);
  if (!existsSync(r.cliPath)) {
    throw new LatchkeyError('LK_USAGE', `Latchkey CLI not found at ${r.cliPath} (build it with \`npm run build\`, or install the package)`);
  }
}

/**
 * The `env:` secret references the service cannot resolve: a user service does not inherit the
 * installing shell's environment, so `env:TOK` that works in a terminal is "not set" in the
 * service, and the keeper would report every such source as broken. Each entry names where it
 * is used (`env:TOK (sources.github.token.secret)`).
 */
export async function envReferencesOutsideService(home: string, keeperArgs: readonly string[] = []): Promise<string[]> {
  const found: string[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      if (/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(v)) found.push(`${v} (${path})`);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    }
  };
  try {
    walk(JSON.parse(await readConfigText(homePaths(home).config)) as unknown, '');
  } catch {
    // No config (yet) or an unreadable one: the keeper says so itself when it starts.
  }
  keeperArgs.forEach((a, i) => {
    const ref = a === '--token' ? keeperArgs[i + 1] : a.startsWith('--token=') ? a.slice('--token='.length) : undefined;
    if (ref?.startsWith('env:')) found.push(`${ref} (--token)`);
  });
  return found;
}

function envNote(platform: ServicePlatform, refs: string[], path: string): string[] {
  if (refs.length === 0) return [];
  const give =
    platform === 'linux'
      ? `or give the service the variables: systemctl --user edit ${SERVICE.systemdUnit}, then [Service] Environment=NAME=value (or EnvironmentFile=)`
      : `or add the variables under EnvironmentVariables in ${path} and install again`;
  return [
    `Warning: the service does not see your shell's environment, so these references will not resolve there: ${refs.join(', ')}.`,
    `Store the values where the service can read them — a file (latchkey secrets set file:/path) or the keyring (latchkey secrets set keyring:latchkey/<name>) — and use that reference instead, ${give}.`,
  ];
}

/**
 * Writes the unit / plist (mode 0644) and activates it. When the service manager is missing or
 * unreachable the file is still written and the result says exactly what to run by hand; this
 * never throws for a service-manager failure (only for bad input or an unwritable file).
 */
export async function installService(opts: ServiceOptions = {}): Promise<InstallResult> {
  const r = resolveOptions(opts);
  const content = render(r);
  if (opts.print) {
    r.out.write(content);
    return { platform: r.platform, path: r.path, content, written: false, activated: false, message: '' };
  }
  assertRunnable(r);
  const previous = await readIfExists(r.path);
  await mkdir(dirname(r.path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(r.path, content, 0o644);
  await chmod(r.path, 0o644); // the umask may have narrowed it; the file holds no secret
  const changed = previous !== undefined && previous !== content;
  const verb = previous === undefined ? 'Wrote' : changed ? 'Updated' : 'Kept (unchanged)';
  const result = await (r.platform === 'darwin' ? activateLaunchd(r, content, verb) : activateSystemd(r, content, verb, changed));
  const note = envNote(r.platform, await envReferencesOutsideService(r.home, r.args), r.path);
  return note.length ? { ...result, message: [result.message, ...note].join('\n') } : result;
}

async function activateSystemd(r: Resolved, content: string, verb: string, changed: boolean): Promise<InstallResult> {
  const unit = SERVICE.systemdUnit;
  const manual = [`systemctl --user daemon-reload`, `systemctl --user enable --now ${unit}`];
  const steps: string[][] = [['--user', 'daemon-reload'], ['--user', 'enable', '--now', unit]];
  // enable --now does not restart a running service, so a changed unit is applied explicitly.
  if (changed) steps.push(['--user', 'try-restart', unit]);
  for (const args of steps) {
    const res = await r.run('systemctl', args);
    if (res.code !== 0) {
      return {
        platform: r.platform,
        path: r.path,
        content,
        written: true,
        activated: false,
        message: [
          `${verb} ${r.path}, but could not activate it: ${describeFailure('systemctl', args, res)}.`,
          'Run these by hand in a login session of this user:',
          ...manual.map((m) => `  ${m}`),
          `To keep it running after you log out: loginctl enable-linger ${userName(r.env)}`,
          'Or run the keeper in the foreground: latchkey keeper',
        ].join('\n'),
      };
    }
  }
  const lines = [`${verb} ${r.path}; ${unit} is enabled and running.`, `Logs: journalctl --user -u ${unit} -f`];
  const linger = await lingerState(r);
  if (linger === false) {
    lines.push(`Note: it stops when you log out unless lingering is on: loginctl enable-linger ${userName(r.env)}`);
  }
  return { platform: r.platform, path: r.path, content, written: true, activated: true, message: lines.join('\n') };
}

async function lingerState(r: Resolved): Promise<boolean | null> {
  const res = await r.run('loginctl', ['show-user', userName(r.env), '--property=Linger', '--value']);
  if (res.code !== 0) return null;
  const v = res.stdout.trim();
  return v === 'yes' ? true : v === 'no' ? false : null;
}

async function activateLaunchd(r: Resolved, content: string, verb: string): Promise<InstallResult> {
  const domain = `gui/${r.uid}`;
  const target = `${domain}/${SERVICE.launchdLabel}`;
  await mkdir(join(r.home, SERVICE.logDir), { recursive: true, mode: 0o700 });
  // Reload: bootstrap refuses a label that is already loaded, so unload any previous version.
  const loaded = await r.run('launchctl', ['print', target]);
  if (loaded.code === 127) return launchdManual(r, content, verb, describeFailure('launchctl', ['print', target], loaded));
  if (loaded.code === 0) await r.run('launchctl', ['bootout', target]);
  await r.run('launchctl', ['enable', target]); // clears a persistent "disabled" flag
  const boot = await r.run('launchctl', ['bootstrap', domain, r.path]);
  if (boot.code !== 0) {
    const legacy = await r.run('launchctl', ['load', '-w', r.path]);
    if (legacy.code !== 0) {
      return launchdManual(
        r,
        content,
        verb,
        `${describeFailure('launchctl', ['bootstrap', domain, r.path], boot)}; ${describeFailure('launchctl', ['load', '-w', r.path], legacy)}`,
      );
    }
  }
  return {
    platform: r.platform,
    path: r.path,
    content,
    written: true,
    activated: true,
    message: [`${verb} ${r.path}; ${SERVICE.launchdLabel} is loaded and starts at login.`, `Logs: ${join(r.home, SERVICE.logDir)}/`].join('\n'),
  };
}

function launchdManual(r: Resolved, content: string, verb: string, why: string): InstallResult {
  return {
    platform: r.platform,
    path: r.path,
    content,
    written: true,
    activated: false,
    message: [
      `${verb} ${r.path}, but could not load it: ${why}.`,
      'Run this by hand from a terminal in your desktop session:',
      `  launchctl bootstrap gui/${r.uid} '${r.path.replace(/'/g, `'\\''`)}'`,
      'Or run the keeper in the foreground: latchkey keeper',
    ].join('\n'),
  };
}

/** Stops and disables the service and removes its file. Never throws for a manager failure. */
export async function uninstallService(opts: ServiceOptions = {}): Promise<UninstallResult> {
  const r = resolveOptions(opts);
  const existed = (await readIfExists(r.path)) !== undefined;
  const notes: string[] = [];
  let deactivated = true;
  if (r.platform === 'linux') {
    const args = ['--user', 'disable', '--now', SERVICE.systemdUnit];
    const res = await r.run('systemctl', args);
    // "not loaded"/"does not exist" means there is nothing to stop: that is success here.
    if (res.code !== 0 && !/not loaded|does not exist|No such file/i.test(res.stderr)) {
      deactivated = false;
      notes.push(`Could not stop it: ${describeFailure('systemctl', args, res)}. If it is running, run: systemctl --user disable --now ${SERVICE.systemdUnit}`);
    }
  } else {
    const target = `gui/${r.uid}/${SERVICE.launchdLabel}`;
    const res = await r.run('launchctl', ['bootout', target]);
    if (res.code !== 0) {
      const probe = await r.run('launchctl', ['print', target]);
      if (probe.code === 0) {
        const legacy = await r.run('launchctl', ['unload', '-w', r.path]);
        if (legacy.code !== 0) {
          deactivated = false;
          notes.push(`Could not unload it: ${describeFailure('launchctl', ['bootout', target], res)}. Run: launchctl bootout ${target}`);
        }
      }
    }
  }
  if (existed) {
    try {
      await unlink(r.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (r.platform === 'linux') {
    const reload = await r.run('systemctl', ['--user', 'daemon-reload']);
    if (reload.code === 0) await r.run('systemctl', ['--user', 'reset-failed', SERVICE.systemdUnit]);
  }
  const head = existed ? `Removed ${r.path}.` : `Nothing to remove: ${r.path} does not exist.`;
  return { platform: r.platform, path: r.path, removed: existed, deactivated, message: [head, ...notes].join('\n') };
}

/** Whether the service file exists and whether the service manager runs it. */
export async function serviceStatus(opts: ServiceOptions = {}): Promise<StatusResult> {
  const r = resolveOptions(opts);
  const installed = (await readIfExists(r.path)) !== undefined;
  let enabled: boolean | null = null;
  let active: boolean | null = null;
  let linger: boolean | null = null;
  let why = '';
  if (r.platform === 'linux') {
    const act = await r.run('systemctl', ['--user', 'is-active', SERVICE.systemdUnit]);
    const state = act.stdout.trim();
    // is-active exits 3 with "inactive"/"failed" on stdout; anything else means we could not ask.
    if (state !== '' && act.code !== 127) {
      active = state === 'active' || state === 'reloading' || state === 'activating';
      const en = await r.run('systemctl', ['--user', 'is-enabled', SERVICE.systemdUnit]);
      const e = en.stdout.trim();
      enabled = e === '' ? null : e === 'enabled' || e === 'enabled-runtime' || e === 'linked';
      linger = await lingerState(r);
      if (state === 'failed') why = ` It failed; see: journalctl --user -u ${SERVICE.systemdUnit} -n 50`;
    } else {
      why = ` (cannot ask systemd: ${describeFailure('systemctl', ['--user', 'is-active', SERVICE.systemdUnit], act)})`;
    }
  } else {
    const target = `gui/${r.uid}/${SERVICE.launchdLabel}`;
    const res = await r.run('launchctl', ['print', target]);
    if (res.code === 0) {
      enabled = true;
      active = /^\s*state = running\s*$/m.test(res.stdout) || /^\s*pid = \d+\s*$/m.test(res.stdout);
    } else if (res.code === 127) {
      why = ` (cannot ask launchd: ${describeFailure('launchctl', ['print', target], res)})`;
    } else {
      enabled = false;
      active = false;
    }
  }
  const name = r.platform === 'linux' ? SERVICE.systemdUnit : SERVICE.launchdLabel;
  const state =
    active === null ? 'state unknown' : active ? 'running' : enabled ? 'enabled but not running' : 'not running';
  const message = installed
    ? `${name}: installed at ${r.path}, ${state}.${why}` +
      (linger === false && active ? ` It stops when you log out unless: loginctl enable-linger ${userName(r.env)}` : '')
    : `${name}: not installed (no ${r.path}); install with: latchkey service install${active ? ' (a process is still running under this name)' : ''}`;
  return { platform: r.platform, path: r.path, installed, enabled, active, linger, message };
}
