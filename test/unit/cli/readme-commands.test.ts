/**
 * The README's command table and each command's `--help` stay in sync: every command in one is
 * in the other, every option a README row shows is one the command's help has, and every option
 * the help has is shown in the README (except the few listed below, which the help mentions
 * but belong to something else).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { commandNames, main } from '../../../src/cli/main.js';
import { repoRoot } from '../../helpers/home.js';

/** Options a command's help names that are not its own options. */
const NOT_OWN: Record<string, Record<string, string>> = {
  add: { '--grant': "import's option, in the note on what login needs", '--device': "login's option, in the same note" },
  keeper: { '--optimize-for-size': "node's option, in the note on the service's command line" },
  service: { '--interval': 'a keeper option passed through after --', '--port': 'a keeper option passed through after --' },
};

function capture(): { stream: NodeJS.WritableStream; text(): string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

async function helpOf(args: string[]): Promise<{ code: number; stdout: string }> {
  const out = capture();
  const err = capture();
  const code = await main(args, { stdout: out.stream, stderr: err.stream, stdin: process.stdin, env: {} });
  return { code, stdout: out.text() };
}

/** The README's "## Commands" table: the command cell of each row, `\|` unescaped. */
async function readmeRows(): Promise<string[]> {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Commands'), readme.indexOf('\n## ', readme.indexOf('## Commands') + 1));
  return [...section.matchAll(/^\| `(latchkey [^`]*)` \|/gm)].map((m) => m[1]!.replaceAll('\\|', '|'));
}

const flagsOf = (text: string): Set<string> => new Set(text.match(/--[a-z][a-z-]*/g) ?? []);

test('the README command table lists exactly the commands of `latchkey --help`', async () => {
  const rows = await readmeRows();
  assert.ok(rows.length >= 15, `found the table (${rows.length} rows)`);
  const inReadme = new Set(rows.map((r) => r.split(/\s+/)[1]!));
  const top = await helpOf(['--help']);
  const inHelp = new Set([...top.stdout.matchAll(/^ {2}([a-z][a-z-]*) {2,}/gm)].map((m) => m[1]!));
  assert.deepEqual([...inHelp].sort(), commandNames().sort(), '`latchkey --help` lists every command');
  assert.deepEqual([...inReadme].filter((c) => c !== 'version').sort(), [...inHelp].sort());
  // `latchkey version` (README) is answered by the CLI.
  const v = await helpOf(['version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});

test("each README row's options are the command's, and each option in a command's --help is in the README", async () => {
  const rows = await readmeRows();
  const byCommand = new Map<string, Set<string>>();
  for (const row of rows) {
    const name = row.split(/\s+/)[1]!;
    const set = byCommand.get(name) ?? new Set<string>();
    for (const f of flagsOf(row)) set.add(f);
    byCommand.set(name, set);
  }
  for (const name of commandNames()) {
    const help = await helpOf([name, '--help']);
    assert.equal(help.code, 0, name);
    const helpFlags = flagsOf(help.stdout);
    const readme = byCommand.get(name) ?? new Set<string>();
    const notInHelp = [...readme].filter((f) => !helpFlags.has(f));
    assert.deepEqual(notInHelp, [], `${name}: README options missing from \`latchkey ${name} --help\``);
    const notInReadme = [...helpFlags].filter((f) => f !== '--help' && !readme.has(f) && !(NOT_OWN[name]?.[f] !== undefined));
    assert.deepEqual(notInReadme, [], `${name}: options of \`latchkey ${name} --help\` missing from the README table`);
  }
});
