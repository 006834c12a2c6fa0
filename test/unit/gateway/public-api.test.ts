/** The `latchkey/gateway` entry: every export documented at its declaration, and the package export resolves to it. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../../helpers/home.js';

test('latchkey/gateway: every export has TSDoc; package.json exports it', async () => {
  const entry = join(repoRoot, 'src', 'gateway', 'index.ts');
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  assert.ok(file);
  const mod = checker.getSymbolAtLocation(file);
  assert.ok(mod);
  const exports = checker.getExportsOfModule(mod);
  const names = exports.map((s) => s.getName());
  for (const required of ['createGateway', 'startGateway', 'Gateway', 'GatewayOptions']) assert.ok(names.includes(required), required);
  const undocumented = exports.filter((sym) => {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    return ts.displayPartsToString(target.getDocumentationComment(checker)).trim() === '';
  });
  assert.deepEqual(undocumented.map((s) => s.getName()), []);
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { exports: Record<string, { import: string; types: string }> };
  assert.deepEqual(pkg.exports['./gateway'], { types: './dist/src/gateway/index.d.ts', import: './dist/src/gateway/index.js' });
  const mod2 = (await import(join(repoRoot, pkg.exports['./gateway']?.import ?? ''))) as Record<string, unknown>;
  assert.equal(typeof mod2.createGateway, 'function');
  assert.equal(typeof mod2.startGateway, 'function');
});
