import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SERVICE,
  defaultRunCommand,
  installService,
  renderLaunchdPlist,
  renderSystemdUnit,
  serviceStatus,
  servicePath,
  systemdQuoteArg,
  uninstallService,
  type CommandResult,
  type CommandRunner,
} from '../../../src/service/service.js';
import { LatchkeyError } from '../../../src/core/errors.js';

// ---------------------------------------------------------------------------------------------
// helpers

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

function tempDir(t: { after(fn: () => void): void }, prefix = 'lk-service-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Paths as hostile as systemd allows: spaces, quotes, `%` (specifiers), `$` (variables), `\`. */
const NASTY_HOME = `/tmp/lk home "q" 'x' %h %% \\back $HOME`;

interface Call {
  cmd: string;
  args: string[];
}

function fakeRunner(answer: (cmd: string, args: string[]) => Partial<CommandResult> = () => ({})): { run: CommandRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: CommandRunner = async (cmd, args) => {
    calls.push({ cmd, args: [...args] });
    return { code: 0, stdout: '', stderr: '', ...answer(cmd, [...args]) };
  };
  return { run, calls };
}

const line = (c: Call): string => [c.cmd, ...c.args].join(' ');

function collect(): { stdout: { write(s: string): boolean }; text: () => string } {
  let buf = '';
  return { stdout: { write: (s: string) => ((buf += s), true) }, text: () => buf };
}

/**
 * A model of how systemd reads one ExecStart= line: split on whitespace, honour double quotes,
 * C-unescape, `%%` → `%`, and in arguments (not the executable) `$$` → `$`.
 */
function parseExecStart(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (value[i] === ' ') i++;
    if (i >= value.length) break;
    let word = '';
    let quoted = false;
    if (value[i] === '"') {
      quoted = true;
      i++;
    }
    for (; i < value.length; i++) {
      const ch = value[i] as string;
      if (quoted && ch === '"') {
        i++;
        break;
      }
      if (!quoted && ch === ' ') break;
      if (ch === '\\') {
        const next = value[++i];
        word += next === 'n' ? '\n' : (next ?? '');
        continue;
      }
      word += ch;
    }
    words.push(word);
  }
  return words.map((w, n) => {
    const unpct = w.replace(/%%/g, '%');
    return n === 0 ? unpct : unpct.replace(/\$\$/g, '$');
  });
}

function unitValue(unit: string, key: string): string {
  const m = unit.split('\n').find((l) => l.startsWith(`${key}=`));
  assert.ok(m, `unit has ${key}=`);
  return m.slice(key.length + 1);
}

// --- a tiny strict XML parser (well-formedness + tree), enough for a plist ---------------------

interface XmlElement {
  name: string;
  children: XmlNode[];
}
type XmlNode = XmlElement | string;

function parseXml(src: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`XML not well-formed at offset ${i}: ${why}: ${JSON.stringify(src.slice(i, i + 40))}`);
  };
  const decode = (text: string): string =>
    text.replace(/&([^;]*);?/g, (all, ent: string) => {
      if (!all.endsWith(';')) fail(`bare & in ${JSON.stringify(text)}`);
      const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
      if (ent in named) return named[ent] as string;
      const num = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(ent);
      if (!num) return fail(`unknown entity &${ent};`);
      const cp = num[1]!.startsWith('x') ? parseInt(num[1]!.slice(1), 16) : parseInt(num[1]!, 10);
      return String.fromCodePoint(cp);
    });
  const skipMisc = (): void => {
    for (;;) {
      while (/\s/.test(src[i] ?? '')) i++;
      if (src.startsWith('<!--', i)) {
        const end = src.indexOf('-->', i + 4);
        if (end < 0) fail('unterminated comment');
        if (src.slice(i + 4, end).includes('--')) fail('"--" inside a comment');
        i = end + 3;
      } else if (src.startsWith('<?', i)) {
        const end = src.indexOf('?>', i);
        if (end < 0) fail('unterminated processing instruction');
        i = end + 2;
      } else if (src.startsWith('<!DOCTYPE', i)) {
        const end = src.indexOf('>', i);
        if (end < 0) fail('unterminated DOCTYPE');
        i = end + 1;
      } else return;
    }
  };
  const NAME = /^[A-Za-z_:][A-Za-z0-9_.:-]*/;
  const element = (): XmlElement => {
    if (src[i] !== '<') fail('expected <');
    i++;
    const m = NAME.exec(src.slice(i));
    if (!m) return fail('bad element name');
    const name = m[0];
    i += name.length;
    // attributes
    for (;;) {
      while (/\s/.test(src[i] ?? '')) i++;
      if (src.startsWith('/>', i)) {
        i += 2;
        return { name, children: [] };
      }
      if (src[i] === '>') {
        i++;
        break;
      }
      const a = /^([A-Za-z_:][A-Za-z0-9_.:-]*)\s*=\s*("[^"<]*"|'[^'<]*')/.exec(src.slice(i));
      if (!a) fail('bad attribute');
      decode(a![2]!.slice(1, -1));
      i += a![0].length;
    }
    const children: XmlNode[] = [];
    for (;;) {
      if (i >= src.length) fail(`unclosed <${name}>`);
      if (src.startsWith('</', i)) {
        i += 2;
        if (!src.startsWith(name, i)) fail(`mismatched close tag for <${name}>`);
        i += name.length;
        while (/\s/.test(src[i] ?? '')) i++;
        if (src[i] !== '>') fail('bad close tag');
        i++;
        return { name, children };
      }
      if (src.startsWith('<!--', i)) {
        const end = src.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      if (src.startsWith('<![CDATA[', i)) {
        const end = src.indexOf(']]>', i);
        if (end < 0) fail('unterminated CDATA');
        children.push(src.slice(i + 9, end));
        i = end + 3;
        continue;
      }
      if (src[i] === '<') {
        children.push(element());
        continue;
      }
      const end = src.indexOf('<', i);
      const raw = src.slice(i, end < 0 ? src.length : end);
      if (raw.includes(']]>')) fail('"]]>" in text');
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(raw)) fail('control character in text');
      children.push(decode(raw));
      i += raw.length;
    }
  };
  skipMisc();
  const root = element();
  skipMisc();
  if (i !== src.length) fail('content after the root element');
  return root;
}

type Plist = string | number | boolean | Plist[] | { [k: string]: Plist };

function plistValue(node: XmlElement): Plist {
  const elements = node.children.filter((c): c is XmlElement => typeof c !== 'string');
  const text = node.children.filter((c): c is string => typeof c === 'string').join('');
  switch (node.name) {
    case 'string':
      return text;
    case 'integer':
      assert.match(text, /^-?\d+$/);
      return Number(text);
    case 'true':
      return true;
    case 'false':
      return false;
    case 'array':
      return elements.map(plistValue);
    case 'dict': {
      const out: Record<string, Plist> = {};
      assert.equal(elements.length % 2, 0, 'dict has key/value pairs');
      for (let n = 0; n < elements.length; n += 2) {
        const k = elements[n]!;
        assert.equal(k.name, 'key');
        const key = k.children.join('');
        assert.ok(!(key in out), `duplicate key ${key}`);
        out[key] = plistValue(elements[n + 1]!);
      }
      return out;
    }
    default:
      throw new Error(`unexpected plist element <${node.name}>`);
  }
}

function parsePlist(xml: string): Record<string, Plist> {
  const root = parseXml(xml);
  assert.equal(root.name, 'plist');
  const top = root.children.filter((c): c is XmlElement => typeof c !== 'string');
  assert.equal(top.length, 1);
  const v = plistValue(top[0]!);
  assert.ok(v && typeof v === 'object' && !Array.isArray(v));
  return v as Record<string, Plist>;
}

// ---------------------------------------------------------------------------------------------
// systemd unit

test('systemd unit: required settings, quoting of spaces, quotes, % and $', () => {
  const execPath = '/opt/node 20/bin/node%x';
  const cliPath = `/home/u/my "apps"/it's 100%/$dir\\latchkey/main.js`;
  const unit = renderSystemdUnit({ execPath, cliPath, home: NASTY_HOME, args: ['--interval', '60', 'a b'] });
  for (const l of [
    '[Unit]',
    'After=network-online.target',
    '[Service]',
    'Type=simple',
    'Restart=on-failure',
    'RestartSec=5',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    'UMask=0077',
    'NoNewPrivileges=yes',
    '[Install]',
    'WantedBy=default.target',
  ]) {
    assert.ok(unit.split('\n').includes(l), `unit contains ${l}`);
  }
  assert.match(unitValue(unit, 'Description'), /^Latchkey keeper/);
  assert.ok(!unitValue(unit, 'Description').includes('%'), 'no specifier in Description');
  // Namespacing options need privileges (or user namespaces) in a user unit: not used.
  assert.doesNotMatch(unit, /^(PrivateTmp|ProtectSystem|ProtectHome|PrivateUsers|MemoryDenyWriteExecute)=/m);

  const exec = unitValue(unit, 'ExecStart');
  assert.ok(!exec.replace(/%%/g, '').includes('%'), 'every % is doubled');
  assert.deepEqual(parseExecStart(exec), [execPath, ...SERVICE.nodeOptions, cliPath, 'keeper', '--interval', '60', 'a b']);

  const env = unitValue(unit, 'Environment');
  assert.deepEqual(parseExecStart(env), [`LATCHKEY_HOME=${NASTY_HOME}`]);
  assert.ok(env.includes('%%h'), '% in LATCHKEY_HOME escaped as %%');
  assert.ok(env.includes('$HOME'), '$ is literal in Environment= (no $$)');
});

test('systemd quoting of one argument', () => {
  assert.equal(systemdQuoteArg('plain'), '"plain"');
  assert.equal(systemdQuoteArg('a b'), '"a b"');
  assert.equal(systemdQuoteArg('100%'), '"100%%"');
  assert.equal(systemdQuoteArg('$HOME'), '"$$HOME"');
  assert.equal(systemdQuoteArg('say "hi"'), '"say \\"hi\\""');
  assert.equal(systemdQuoteArg('c:\\x'), '"c:\\\\x"');
  assert.throws(() => systemdQuoteArg('two\nlines'), LatchkeyError);
});

test('systemd unit: refuses what systemd cannot run instead of writing a dead unit', () => {
  const ok = { execPath: '/usr/bin/node', cliPath: '/x/main.js', home: '/h' };
  assert.throws(() => renderSystemdUnit({ ...ok, execPath: '/opt/"q"/node' }), /quote or a backslash/);
  assert.throws(() => renderSystemdUnit({ ...ok, execPath: "/opt/it's/node" }), /quote or a backslash/);
  assert.throws(() => renderSystemdUnit({ ...ok, execPath: 'node' }), /absolute path/);
  assert.throws(() => renderSystemdUnit({ ...ok, home: '/h\nExecStartPre=/bin/rm -rf ~' }), /control character/);
  assert.throws(() => renderSystemdUnit({ ...ok, args: ['x\ny'] }), /control character/);
  // Non-normalized executable paths are rejected by systemd: they are normalized here.
  assert.deepEqual(parseExecStart(unitValue(renderSystemdUnit({ ...ok, execPath: '/usr//bin/./node' }), 'ExecStart'))[0], '/usr/bin/node');
});

const systemdAnalyze = which('systemd-analyze');

test('systemd unit passes `systemd-analyze verify --user`', { skip: systemdAnalyze ? false : 'needs systemd-analyze (apt-get install -y systemd)' }, (t) => {
  const dir = tempDir(t);
  // systemd refuses quotes and backslashes in the executable path (tested above), but spaces and
  // % are fine; the CLI path and LATCHKEY_HOME may hold anything printable.
  const binDir = join(dir, 'node bin %i');
  mkdirSync(binDir);
  const execPath = join(binDir, 'node');
  symlinkSync(process.execPath, execPath);
  const cliDir = join(dir, `cli "dir" 'q' %n $HOME \\x`);
  mkdirSync(cliDir);
  const cliPath = join(cliDir, 'main.js');
  writeFileSync(cliPath, '');
  const unitDir = join(dir, 'units');
  mkdirSync(unitDir);
  const unitPath = join(unitDir, SERVICE.systemdUnit);
  writeFileSync(unitPath, renderSystemdUnit({ execPath, cliPath, home: NASTY_HOME, args: ['--interval', '300'] }));
  // The verifier starts a user-manager instance in test mode: it needs a runtime directory.
  const runtime = join(dir, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  const r = spawnSync(systemdAnalyze as string, ['verify', '--user', unitPath], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_LEVEL: 'notice' },
  });
  const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(SERVICE.systemdUnit));
  assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stdout}\n${r.stderr}`);
  assert.deepEqual(ours, [], 'no warnings about the unit');

  // Control: a unit whose executable does not exist is rejected, so the check above is real.
  writeFileSync(unitPath, renderSystemdUnit({ execPath: join(dir, 'missing', 'node'), cliPath, home: NASTY_HOME }));
  const bad = spawnSync(systemdAnalyze as string, ['verify', '--user', unitPath], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
  assert.notEqual(bad.status, 0, 'verify rejects a missing executable');
});

// ---------------------------------------------------------------------------------------------
// launchd plist

const NASTY_PLIST = {
  execPath: '/usr/local/bin/node',
  cliPath: `/Users/a&b/<apps>/"q" 'x' ]]> %h/main.js`,
  home: `/Users/a&b/Library/Application Support/latchkey <&> ü`,
  args: ['--port', '7878', '</string><string>injected'],
};

test('launchd plist: well-formed XML with the right keys and exact values', () => {
  const xml = renderLaunchdPlist(NASTY_PLIST);
  const p = parsePlist(xml);
  assert.equal(p.Label, SERVICE.launchdLabel);
  assert.deepEqual(p.ProgramArguments, [NASTY_PLIST.execPath, ...SERVICE.nodeOptions, NASTY_PLIST.cliPath, 'keeper', ...NASTY_PLIST.args]);
  assert.deepEqual(p.EnvironmentVariables, { LATCHKEY_HOME: NASTY_PLIST.home });
  assert.equal(p.RunAtLoad, true);
  assert.ok(p.KeepAlive === true || (typeof p.KeepAlive === 'object' && (p.KeepAlive as Record<string, Plist>).SuccessfulExit === false));
  assert.equal(p.ProcessType, 'Background');
  assert.equal(p.Umask, 63);
  assert.equal(p.StandardOutPath, join(NASTY_PLIST.home, 'logs', SERVICE.stdoutLog));
  assert.equal(p.StandardErrorPath, join(NASTY_PLIST.home, 'logs', SERVICE.stderrLog));
  assert.throws(() => renderLaunchdPlist({ ...NASTY_PLIST, home: '/x\u0001y' }), LatchkeyError);
});

test('the tiny XML checker rejects what it should (so the plist test means something)', () => {
  assert.throws(() => parseXml('<a><b></a></b>'), /not well-formed/);
  assert.throws(() => parseXml('<a>x & y</a>'), /not well-formed/);
  assert.throws(() => parseXml('<a>x < y</a>'), /not well-formed/);
  assert.throws(() => parseXml('<a></a><b></b>'), /not well-formed/);
  assert.deepEqual(parseXml('<a>&lt;&amp;&#x41;</a>').children, ['<&A']);
});

const xmllint = which('xmllint');
const plutil = which('plutil');

test('launchd plist passes xmllint / plutil', { skip: xmllint || plutil ? false : 'needs xmllint (apt-get install -y libxml2-utils) or plutil (macOS)' }, (t) => {
  const dir = tempDir(t);
  const file = join(dir, SERVICE.launchdPlist);
  writeFileSync(file, renderLaunchdPlist(NASTY_PLIST));
  if (xmllint) {
    const r = spawnSync(xmllint, ['--noout', '--nonet', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  if (plutil) {
    const r = spawnSync(plutil, ['-lint', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
});

// ---------------------------------------------------------------------------------------------
// install / uninstall / status

function linuxSetup(t: { after(fn: () => void): void }): { dir: string; env: NodeJS.ProcessEnv; cliPath: string; home: string; unitPath: string } {
  const dir = tempDir(t);
  const cliPath = join(dir, 'cli', 'main.js');
  mkdirSync(join(dir, 'cli'));
  writeFileSync(cliPath, '');
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'xdg config'), USER: 'tester' };
  return { dir, env, cliPath, home: join(dir, 'lk home'), unitPath: join(dir, 'xdg config', 'systemd', 'user', SERVICE.systemdUnit) };
}

test('install --print writes the unit to stdout and touches nothing', async (t) => {
  const s = linuxSetup(t);
  const { run, calls } = fakeRunner();
  const out = collect();
  const r = await installService({ platform: 'linux', print: true, stdout: out.stdout, env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: run });
  assert.equal(r.written, false);
  assert.equal(r.activated, false);
  assert.equal(r.path, s.unitPath);
  assert.equal(out.text(), renderSystemdUnit({ execPath: process.execPath, cliPath: s.cliPath, home: s.home }));
  assert.deepEqual(calls, []);
  assert.equal(existsSync(join(s.dir, 'xdg config')), false);

  const mac = collect();
  const m = await installService({ platform: 'darwin', print: true, stdout: mac.stdout, userHome: join(s.dir, 'home'), home: s.home, cliPath: s.cliPath, runCommand: run });
  assert.equal(m.written, false);
  assert.match(mac.text(), /<key>Label<\/key>/);
  assert.deepEqual(calls, []);
  assert.equal(existsSync(join(s.dir, 'home')), false);
});

test('install on Linux writes a 0644 unit under XDG_CONFIG_HOME and enables it', async (t) => {
  const s = linuxSetup(t);
  const { run, calls } = fakeRunner((cmd) => (cmd === 'loginctl' ? { stdout: 'no\n' } : {}));
  const old = process.umask(0o077); // a strict umask must not leave the unit unreadable
  let r;
  try {
    r = await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: run });
  } finally {
    process.umask(old);
  }
  assert.equal(r.path, s.unitPath);
  assert.equal(r.written, true);
  assert.equal(r.activated, true);
  assert.equal(statSync(s.unitPath).mode & 0o777, 0o644);
  const unit = readFileSync(s.unitPath, 'utf8');
  assert.equal(unit, r.content);
  assert.deepEqual(parseExecStart(unitValue(unit, 'ExecStart')), [process.execPath, ...SERVICE.nodeOptions, s.cliPath, 'keeper']);
  assert.deepEqual(calls.slice(0, 2).map(line), ['systemctl --user daemon-reload', `systemctl --user enable --now ${SERVICE.systemdUnit}`]);
  assert.match(r.message, /loginctl enable-linger tester/, 'warns that the service stops at logout without linger');

  // Re-install with other arguments: the running service is restarted to pick them up.
  calls.length = 0;
  const again = await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, args: ['--interval', '60'], runCommand: run });
  assert.match(again.message, /^Updated /);
  assert.ok(calls.map(line).includes(`systemctl --user try-restart ${SERVICE.systemdUnit}`));
});

test('a relative XDG_CONFIG_HOME is ignored (XDG spec); default is ~/.config', () => {
  assert.equal(servicePath('linux', { XDG_CONFIG_HOME: 'rel/dir', HOME: '/home/u' }), `/home/u/.config/systemd/user/${SERVICE.systemdUnit}`);
  assert.equal(servicePath('linux', { XDG_CONFIG_HOME: '/x', HOME: '/home/u' }), `/x/systemd/user/${SERVICE.systemdUnit}`);
  assert.equal(servicePath('darwin', { HOME: '/Users/u' }), `/Users/u/Library/LaunchAgents/${SERVICE.launchdPlist}`);
});

test('install without systemctl still writes a usable unit and says what to run', async (t) => {
  const s = linuxSetup(t);
  const { run } = fakeRunner((cmd) => (cmd === 'systemctl' ? { code: 127, stderr: 'spawn systemctl ENOENT' } : {}));
  const r = await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: run });
  assert.equal(r.written, true);
  assert.equal(r.activated, false);
  assert.match(r.message, /systemctl` is not installed/);
  assert.match(r.message, /systemctl --user daemon-reload/);
  assert.match(r.message, new RegExp(`systemctl --user enable --now ${SERVICE.systemdUnit.replace('.', '\\.')}`));
  assert.equal(readFileSync(s.unitPath, 'utf8'), renderSystemdUnit({ execPath: process.execPath, cliPath: s.cliPath, home: s.home }));
  if (systemdAnalyze) {
    const runtime = join(s.dir, 'rt');
    mkdirSync(runtime, { mode: 0o700 });
    const v = spawnSync(systemdAnalyze, ['verify', '--user', s.unitPath], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
    assert.equal(v.status, 0, v.stderr);
  }
});

test('install with no user bus (container, sudo) reports it clearly', async (t) => {
  const s = linuxSetup(t);
  const { run } = fakeRunner((cmd, args) =>
    cmd === 'systemctl' && args.includes('enable') ? { code: 1, stderr: 'Failed to connect to bus: No medium found\n' } : {},
  );
  const r = await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: run });
  assert.equal(r.written, true);
  assert.equal(r.activated, false);
  assert.match(r.message, /user manager is not reachable/);
  assert.match(r.message, /Failed to connect to bus/);
  assert.ok(existsSync(s.unitPath));
});

test('install refuses a missing CLI entry point (the service would crash-loop)', async (t) => {
  const s = linuxSetup(t);
  const { run, calls } = fakeRunner();
  await assert.rejects(
    installService({ platform: 'linux', env: s.env, home: s.home, cliPath: join(s.dir, 'nope.js'), execPath: process.execPath, runCommand: run }),
    /CLI not found/,
  );
  assert.deepEqual(calls, []);
  assert.equal(existsSync(s.unitPath), false);
});

test('uninstall stops, disables and removes the unit', async (t) => {
  const s = linuxSetup(t);
  const { run, calls } = fakeRunner();
  await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: run });
  calls.length = 0;
  const r = await uninstallService({ platform: 'linux', env: s.env, home: s.home, runCommand: run });
  assert.equal(r.removed, true);
  assert.equal(r.deactivated, true);
  assert.equal(existsSync(s.unitPath), false);
  assert.deepEqual(calls.slice(0, 2).map(line), [`systemctl --user disable --now ${SERVICE.systemdUnit}`, 'systemctl --user daemon-reload']);

  const again = await uninstallService({ platform: 'linux', env: s.env, home: s.home, runCommand: fakeRunner(() => ({ code: 1, stderr: `Failed to disable unit: Unit file ${SERVICE.systemdUnit} does not exist.` })).run });
  assert.equal(again.removed, false);
  assert.equal(again.deactivated, true);
  assert.match(again.message, /Nothing to remove/);
});

test('status reports installed / enabled / active', async (t) => {
  const s = linuxSetup(t);
  const before = await serviceStatus({ platform: 'linux', env: s.env, runCommand: fakeRunner(() => ({ code: 3, stdout: 'inactive\n' })).run });
  assert.equal(before.installed, false);
  assert.equal(before.active, false);
  assert.match(before.message, /not installed/);

  await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, runCommand: fakeRunner().run });
  const { run } = fakeRunner((cmd, args) =>
    args.includes('is-active') ? { stdout: 'active\n' } : args.includes('is-enabled') ? { stdout: 'enabled\n' } : cmd === 'loginctl' ? { stdout: 'yes\n' } : {},
  );
  const st = await serviceStatus({ platform: 'linux', env: s.env, runCommand: run });
  assert.deepEqual([st.installed, st.enabled, st.active, st.linger], [true, true, true, true]);
  assert.match(st.message, /running/);

  const nobus = await serviceStatus({ platform: 'linux', env: s.env, runCommand: fakeRunner(() => ({ code: 1, stderr: 'Failed to connect to bus' })).run });
  assert.equal(nobus.installed, true);
  assert.equal(nobus.active, null);
  assert.match(nobus.message, /cannot ask systemd/);
});

test('macOS: writes the agent plist and bootstraps it, falling back to load -w', async (t) => {
  const s = linuxSetup(t);
  const userHome = join(s.dir, 'Users', 'me');
  const plistPath = join(userHome, 'Library', 'LaunchAgents', SERVICE.launchdPlist);
  const base = { platform: 'darwin' as const, userHome, uid: 501, home: s.home, cliPath: s.cliPath, execPath: process.execPath };

  const ok = fakeRunner((_cmd, args) => (args[0] === 'print' ? { code: 113, stderr: 'Could not find service' } : {}));
  const r = await installService({ ...base, runCommand: ok.run });
  assert.equal(r.path, plistPath);
  assert.deepEqual([r.written, r.activated], [true, true]);
  assert.equal(statSync(plistPath).mode & 0o777, 0o644);
  assert.ok(statSync(join(s.home, 'logs')).isDirectory(), 'log directory exists for StandardOutPath');
  assert.equal(parsePlist(readFileSync(plistPath, 'utf8')).Label, SERVICE.launchdLabel);
  assert.ok(ok.calls.map(line).includes(`launchctl bootstrap gui/501 ${plistPath}`));

  const legacy = fakeRunner((_cmd, args) => (args[0] === 'bootstrap' ? { code: 5, stderr: 'Bootstrap failed: 5: Input/output error' } : {}));
  const r2 = await installService({ ...base, runCommand: legacy.run });
  assert.equal(r2.activated, true);
  assert.ok(legacy.calls.map(line).includes(`launchctl bootout gui/501/${SERVICE.launchdLabel}`), 'a loaded old version is unloaded first');
  assert.ok(legacy.calls.map(line).includes(`launchctl load -w ${plistPath}`));

  const broken = fakeRunner((_cmd, args) => (args[0] === 'bootstrap' || args[0] === 'load' ? { code: 5, stderr: 'nope' } : {}));
  const r3 = await installService({ ...base, runCommand: broken.run });
  assert.deepEqual([r3.written, r3.activated], [true, false]);
  assert.match(r3.message, /launchctl bootstrap gui\/501 /);

  const un = await uninstallService({ ...base, runCommand: fakeRunner().run });
  assert.equal(un.removed, true);
  assert.equal(existsSync(plistPath), false);
});

test('unsupported platforms are refused with a clear message', async () => {
  await assert.rejects(installService({ platform: 'win32', print: true, stdout: collect().stdout }), /supports Linux .* and macOS/);
});

test('the default runner reports a missing command as 127, never throws', async () => {
  const r = await defaultRunCommand('latchkey-no-such-command-xyz', ['--version']);
  assert.equal(r.code, 127);
  const ok = await defaultRunCommand(process.execPath, ['-e', 'process.stdout.write("hi"); process.exit(3)']);
  assert.deepEqual([ok.code, ok.stdout], [3, 'hi']);
});

test('the node options written into the service are accepted by this node (a rejected option would keep the service from starting)', () => {
  const r = spawnSync(process.execPath, [...SERVICE.nodeOptions, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'ok');
});

test('install warns about env: references the service cannot resolve (it does not inherit the shell environment)', async (t) => {
  const s = linuxSetup(t);
  mkdirSync(s.home, { recursive: true });
  writeFileSync(
    join(s.home, 'config.json'),
    JSON.stringify({
      version: 1,
      sources: { gh: { token: { secret: 'env:GH_TOKEN' } }, kept: { token: { secret: 'keyring:latchkey/kept' } } },
      keeper: { alerts: { webhook: { url: 'https://hooks.example/x', secret: 'env:HOOK_SECRET' } } },
    }),
  );
  const { run } = fakeRunner((cmd) => (cmd === 'loginctl' ? { stdout: 'yes\n' } : {}));
  const r = await installService({ platform: 'linux', env: s.env, home: s.home, cliPath: s.cliPath, execPath: process.execPath, args: ['--token', 'env:KEEPER_TOKEN'], runCommand: run });
  assert.equal(r.activated, true);
  assert.match(r.message, /does not see your shell's environment.*env:GH_TOKEN \(sources\.gh\.token\.secret\), env:HOOK_SECRET \(keeper\.alerts\.webhook\.secret\), env:KEEPER_TOKEN \(--token\)/);
  assert.match(r.message, /systemctl --user edit latchkey-keeper\.service/);
  assert.doesNotMatch(r.message, /keyring:latchkey\/kept/);
  const { envReferencesOutsideService } = await import('../../../src/service/service.js');
  assert.deepEqual(await envReferencesOutsideService(join(s.dir, 'no such home')), [], 'no config: nothing to say');
});
