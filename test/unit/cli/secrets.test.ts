import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { main } from '../../../src/cli/main.js';
import type { CliIO } from '../../../src/cli/io.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/** A stdin that looks like a terminal: records raw-mode switches, never echoes. */
class FakeTty extends PassThrough {
  isTTY = true;
  rawModes: boolean[] = [];
  setRawMode(mode: boolean): this {
    this.rawModes.push(mode);
    return this;
  }
}

function io(stdin: NodeJS.ReadableStream, env: NodeJS.ProcessEnv = {}): CliIO & { stdout: Sink; stderr: Sink } {
  return { stdout: new Sink(), stderr: new Sink(), stdin, env };
}

function piped(text: string): PassThrough {
  const s = new PassThrough();
  s.end(text);
  return s;
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lk-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('latchkey secrets set', () => {
  test('hidden prompt on a terminal: no echo, line editing, raw mode restored', async (t) => {
    const dir = await tempDir(t);
    const stdin = new FakeTty();
    const cli = io(stdin);
    const done = main(['secrets', 'set', `file:${dir}/tok`], cli);
    // type "ab", backspace, "c", an arrow key (ESC [ D), "dé🔑", Enter
    setImmediate(() => stdin.write('ab\x7fc\x1b[Ddé🔑\r'));
    assert.equal(await done, 0, cli.stderr.text);
    assert.equal(await readFile(join(dir, 'tok'), 'utf8'), 'acdé🔑\n');
    assert.deepEqual(stdin.rawModes, [true, false]);
    assert.match(cli.stderr.text, /^value for file:.* \(input hidden\): \n$/);
    assert.ok(!cli.stderr.text.includes('acd') && !cli.stdout.text.includes('acd'), 'nothing typed is echoed');
    assert.match(cli.stdout.text, /stored file:.*tok \(6 characters\)/);
    assert.equal((await stat(join(dir, 'tok'))).mode & 0o777, 0o600);
  });

  test('Ctrl-C at the prompt cancels: nothing stored, terminal restored', async (t) => {
    const dir = await tempDir(t);
    const stdin = new FakeTty();
    const cli = io(stdin);
    const done = main(['secrets', 'set', `file:${dir}/tok`], cli);
    setImmediate(() => stdin.write('partial\x03'));
    assert.equal(await done, 1);
    assert.match(cli.stderr.text, /cancelled; nothing was stored/);
    assert.deepEqual(stdin.rawModes, [true, false]);
    await assert.rejects(stat(join(dir, 'tok')), /ENOENT/);
  });

  test('piped stdin: one trailing newline is dropped; inner newlines kept', async (t) => {
    const dir = await tempDir(t);
    for (const [input, expected] of [
      ['v1\n', 'v1'],
      ['v2\r\n', 'v2'],
      ['-----BEGIN KEY-----\nabc\n-----END KEY-----\n', '-----BEGIN KEY-----\nabc\n-----END KEY-----'],
    ] as const) {
      const cli = io(piped(input));
      assert.equal(await main(['secrets', 'set', `file:${dir}/p`], cli), 0, cli.stderr.text);
      assert.equal(await readFile(join(dir, 'p'), 'utf8'), `${expected}\n`);
    }
  });

  test('writes 0600 atomically over a looser existing file, creating the directory 0700', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'loose'), 'old\n', { mode: 0o644 });
    assert.equal(await main(['secrets', 'set', `file:${dir}/loose`], io(piped('new'))), 0);
    assert.equal((await stat(join(dir, 'loose'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(dir, 'loose'), 'utf8'), 'new\n');
    assert.deepEqual((await readdir(dir)).sort(), ['loose'], 'no temp files left');
    assert.equal(await main(['secrets', 'set', `file:${dir}/a/b/tok`], io(piped('x'))), 0);
    assert.equal((await stat(join(dir, 'a', 'b'))).mode & 0o777, 0o700);
  });

  test('never takes the value from argv, and never echoes what it refuses', async (t) => {
    const dir = await tempDir(t);
    const SECRET = 'ghp_S3CRET_never_echo';
    const cases: Array<[string[], RegExp]> = [
      [['secrets', 'set', `file:${dir}/tok`, SECRET], /got 1 more \(not shown\).*never taken from the command line/],
      [['secrets', 'set', `file:${dir}/tok`, `--value=${SECRET}`], /unknown option\(s\) \(not shown/],
      [['secrets', 'set', SECRET], /the argument \(21 chars\) is not a secret reference/],
      [['secrets', 'set', `tok:${SECRET}`], /"tok:…" \(25 chars\) is not a secret reference/],
      [['secrets', 'set', `file:${dir}/tok`, '--reveal'], /--reveal applies only to `secrets get`/],
    ];
    for (const [args, message] of cases) {
      const cli = io(piped('value-from-stdin'));
      assert.equal(await main(args, cli), 1, args.join(' '));
      assert.match(cli.stderr.text, message);
      assert.ok(!cli.stderr.text.includes(SECRET) && !cli.stdout.text.includes(SECRET), `${args.join(' ')} echoed the secret`);
    }
    await assert.rejects(stat(join(dir, 'tok')), /ENOENT/);
  });

  test('env: references cannot be set (and why); an empty value is refused', async (t) => {
    const dir = await tempDir(t);
    const env = io(piped('x'));
    assert.equal(await main(['secrets', 'set', 'env:HUBSPOT_TOKEN'], env), 1);
    assert.match(env.stderr.text, /env:HUBSPOT_TOKEN is read from the environment of the process that uses it/);
    const empty = io(piped('\n'));
    assert.equal(await main(['secrets', 'set', `file:${dir}/e`], empty), 1);
    assert.match(empty.stderr.text, /the value is empty; nothing was stored/);
  });
});

describe('latchkey secrets get / rm', () => {
  test('get prints whether it resolves and its length; --reveal prints the value; a missing one exits 4', async (t) => {
    const dir = await tempDir(t);
    await main(['secrets', 'set', `file:${dir}/tok`], io(piped('hunter2-value')));
    const get = io(piped(''));
    assert.equal(await main(['secrets', 'get', `file:${dir}/tok`], get), 0);
    assert.match(get.stdout.text, /resolves \(13 characters\); add --reveal/);
    assert.ok(!get.stdout.text.includes('hunter2'));
    const reveal = io(piped(''));
    assert.equal(await main(['secrets', 'get', '--reveal', `file:${dir}/tok`], reveal), 0);
    assert.equal(reveal.stdout.text, 'hunter2-value\n');
    const envGet = io(piped(''), { MY_TOKEN: 'from-env' });
    assert.equal(await main(['secrets', 'get', 'env:MY_TOKEN'], envGet), 0);
    assert.match(envGet.stdout.text, /resolves \(8 characters\)/);

    const missing = io(piped(''));
    assert.equal(await main(['secrets', 'get', `file:${dir}/none`], missing), 4);
    assert.match(missing.stderr.text, /fix: latchkey secrets set file:/);
    const missingEnv = io(piped(''));
    assert.equal(await main(['secrets', 'get', 'env:NOT_SET_ANYWHERE'], missingEnv), 4);
    assert.match(missingEnv.stderr.text, /fix: .*NOT_SET_ANYWHERE/);
  });

  test('rm deletes, and says so when there is nothing to delete', async (t) => {
    const dir = await tempDir(t);
    await main(['secrets', 'set', `file:${dir}/tok`], io(piped('v')));
    const first = io(piped(''));
    assert.equal(await main(['secrets', 'rm', `file:${dir}/tok`], first), 0);
    assert.match(first.stdout.text, /^removed file:/);
    const second = io(piped(''));
    assert.equal(await main(['secrets', 'rm', `file:${dir}/tok`], second), 0);
    assert.match(second.stdout.text, /nothing to remove/);
    const env = io(piped(''));
    assert.equal(await main(['secrets', 'rm', 'env:X'], env), 1);
  });

  test('usage', async () => {
    const help = io(piped(''));
    assert.equal(await main(['secrets', '--help'], help), 0);
    assert.match(help.stdout.text, /latchkey secrets set <ref>/);
    const none = io(piped(''));
    assert.equal(await main(['secrets'], none), 1);
    assert.match(none.stderr.text, /expected a subcommand: set, get or rm/);
    const top = io(piped(''));
    await main(['--help'], top);
    assert.match(top.stdout.text, /^\s+secrets\s/m);
  });
});
