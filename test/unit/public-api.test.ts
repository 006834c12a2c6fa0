/**
 * The public API (src/index.ts): every export is documented at its declaration (TSDoc, so an
 * editor shows it to a consumer), and the internals stay out of the main entry (a change to
 * them is not a breaking change; tests and benchmarks import them from their modules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../helpers/home.js';

/** Internals that once were exported from the main entry and must not come back by accident. */
const INTERNALS = [
  'TokenEngine',
  'methodRegistry',
  'buildMethods',
  'unavailableMethod',
  'sendAuthorized',
  'authorizedFetch',
  'SourceAuth',
  'probeSource',
  'preflight',
  'readKeeperReport',
  'cachedVerdicts',
  'TokenMethod',
  'OAuthMethod',
  'SessionMethod',
  'createSessionMethod',
  'startLoopbackRedirect',
  'revokeToken',
  'grantFromInput',
  'effectiveSkewMs',
  'refreshDueAt',
  'buildHealthReport',
  'parseHealthReport',
  'refreshAheadReason',
];

/**
 * Declared in src/store/store.ts and src/engine/fresh-token.ts, which are being rewritten on the
 * store-v2 branch: documented at their re-export in src/index.ts until that lands.
 */
const DOCUMENTED_AT_REEXPORT = new Set(['WithLockOptions', 'EngineEvent']);

function publicExports(): { checker: ts.TypeChecker; exports: ts.Symbol[] } {
  const entry = join(repoRoot, 'src', 'index.ts');
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  assert.ok(file, 'src/index.ts not found');
  const moduleSymbol = checker.getSymbolAtLocation(file);
  assert.ok(moduleSymbol, 'src/index.ts is not a module');
  return { checker, exports: checker.getExportsOfModule(moduleSymbol) };
}

test('every export of the main entry has TSDoc at its declaration; no internal is exported', () => {
  const { checker, exports } = publicExports();
  assert.ok(exports.length > 40, `only ${exports.length} exports found`);
  const undocumented: string[] = [];
  for (const sym of exports) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    const docs = ts.displayPartsToString(target.getDocumentationComment(checker)).trim();
    if (docs === '' && !DOCUMENTED_AT_REEXPORT.has(sym.getName())) undocumented.push(sym.getName());
  }
  assert.deepEqual(undocumented, [], `exports without TSDoc at their declaration: ${undocumented.join(', ')}`);
  const names = new Set(exports.map((s) => s.getName()));
  assert.deepEqual(INTERNALS.filter((n) => names.has(n)), []);
});
