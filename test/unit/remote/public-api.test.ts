/**
 * The `latchkey/remote` entry: every export documented at its declaration (TSDoc), reachable
 * as `latchkey/remote` through package.json "exports", and usable from a TypeScript consumer
 * with a Map jar and with an Electron-shaped `session.cookies` (structurally: Electron's own
 * `Cookies` type has these methods).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../../helpers/home.js';

test('every export of latchkey/remote has TSDoc at its declaration', () => {
  const entry = join(repoRoot, 'src', 'remote', 'index.ts');
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  assert.ok(file);
  const mod = checker.getSymbolAtLocation(file);
  assert.ok(mod);
  const exports = checker.getExportsOfModule(mod);
  const names = exports.map((s) => s.getName());
  for (const expected of ['hasLiveSession', 'checkConnection', 'signOut', 'CookieJar', 'ElectronCookies', 'ConnectionState', 'Secret']) assert.ok(names.includes(expected), expected);
  const undocumented = exports
    .filter((sym) => {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      return ts.displayPartsToString(target.getDocumentationComment(checker)).trim() === '';
    })
    .map((s) => s.getName());
  assert.deepEqual(undocumented, []);
});

test('a consumer imports latchkey/remote by its package name and typechecks with a Map jar and an Electron-shaped store', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lk-remote-consumer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'node_modules'));
  await symlink(repoRoot, join(dir, 'node_modules', 'latchkey'));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  await writeFile(
    join(dir, 'consumer.ts'),
    `import { checkConnection, hasLiveSession, type ConnectionState, type JarCookie } from 'latchkey/remote';
// Electron's session.cookies, as declared by electron.d.ts (the parts a consumer has).
interface Cookie { name: string; value: string; domain?: string; hostOnly?: boolean; path?: string; secure?: boolean; httpOnly?: boolean; session?: boolean; expirationDate?: number; sameSite: 'unspecified' | 'no_restriction' | 'lax' | 'strict' }
interface CookiesSetDetails { url: string; name?: string; value?: string; domain?: string; path?: string; secure?: boolean; httpOnly?: boolean; expirationDate?: number; sameSite?: 'unspecified' | 'no_restriction' | 'lax' | 'strict' }
interface Cookies { get(filter: { url?: string; name?: string; domain?: string }): Promise<Cookie[]>; set(details: CookiesSetDetails): Promise<void>; remove(url: string, name: string): Promise<void>; flushStore(): Promise<void> }
declare const electronCookies: Cookies;
const jar = new Map<string, JarCookie>();
const a: ConnectionState = await checkConnection('https://dash.example.com/', jar);
const b: ConnectionState = await checkConnection('https://dash.example.com/', electronCookies);
const live: boolean = hasLiveSession(await electronCookies.get({ url: 'https://dash.example.com/' })) || hasLiveSession(jar);
if (a.status === 'connected') console.log(a.ticket.reveal().length, a.ttlSeconds);
if (b.status === 'needsLogin') console.log(b.loginUrl);
if (b.status === 'unreachable') console.log(b.retryAfterSeconds, b.reason);
export const seen = [live];
`,
  );
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [], noEmit: true, skipLibCheck: false }, files: ['consumer.ts'] }),
  );
  const tsc = join(repoRoot, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `tsc: ${r.stdout}${r.stderr}`);

  // And at run time, by the package name.
  await writeFile(join(dir, 'run.mjs'), `import { hasLiveSession, checkConnection } from 'latchkey/remote';\nconsole.log(typeof checkConnection, hasLiveSession([{ name: '__Host-latchkey_rt', value: 'v' }]));\n`);
  const run = spawnSync(process.execPath, [join(dir, 'run.mjs')], { encoding: 'utf8', cwd: dir, timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'function true');
});
