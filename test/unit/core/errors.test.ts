/**
 * The error table (src/core/errors.ts), Fastify style: every entry's name equals its code, has an exit
 * code and an HTTP status, and each code's mapping is pinned here by its own test, so changing
 * what a code means to a script (exit code) or a client (status) is a visible decision.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ERRORS, ExitCode, LatchkeyError, isTransient, type ErrorCode } from '../../../src/core/errors.js';
import { repoRoot } from '../../helpers/home.js';

/** What each code means to a script and to an HTTP client. */
const EXPECTED: Record<ErrorCode, { exit: ExitCode; http: number }> = {
  LK_USAGE: { exit: ExitCode.usage, http: 400 },
  LK_CONFIG_MISSING: { exit: ExitCode.usage, http: 500 },
  LK_CONFIG_INVALID: { exit: ExitCode.usage, http: 500 },
  LK_UNKNOWN_SOURCE: { exit: ExitCode.usage, http: 404 },
  LK_SECRET_UNRESOLVED: { exit: ExitCode.usage, http: 500 },
  LK_STORE_CORRUPT: { exit: ExitCode.usage, http: 500 },
  LK_STORE_PERMISSIONS: { exit: ExitCode.usage, http: 500 },
  LK_STORE_IO: { exit: ExitCode.usage, http: 500 },
  LK_STORE_CONFLICT: { exit: ExitCode.unreachable, http: 503 },
  LK_LOCK_TIMEOUT: { exit: ExitCode.unreachable, http: 503 },
  LK_NO_GRANT: { exit: ExitCode.actionRequired, http: 401 },
  LK_GRANT_INVALID: { exit: ExitCode.usage, http: 400 },
  LK_GRANT_REVOKED: { exit: ExitCode.actionRequired, http: 401 },
  LK_REFRESH_FAILED: { exit: ExitCode.unreachable, http: 503 },
  LK_TOKEN_ENDPOINT: { exit: ExitCode.unreachable, http: 502 },
  LK_INSECURE_ENDPOINT: { exit: ExitCode.usage, http: 500 },
  LK_UNAUTHORIZED: { exit: ExitCode.actionRequired, http: 401 },
  LK_UNREACHABLE: { exit: ExitCode.unreachable, http: 502 },
  LK_LOGIN_FAILED: { exit: ExitCode.actionRequired, http: 401 },
  LK_SESSION: { exit: ExitCode.actionRequired, http: 401 },
  LK_KEYRING: { exit: ExitCode.usage, http: 500 },
  LK_KEEPER: { exit: ExitCode.usage, http: 500 },
  LK_STORE_SCHEMA: { exit: ExitCode.usage, http: 500 },
  LK_STORE_KEY: { exit: ExitCode.usage, http: 500 },
  LK_CLAIM_LOST: { exit: ExitCode.unreachable, http: 503 },
};

test('every entry of the table is named by its code, with a known exit code, an HTTP error status and a summary', () => {
  const exitCodes = new Set<number>(Object.values(ExitCode));
  for (const [name, spec] of Object.entries(ERRORS)) {
    assert.equal(spec.code, name);
    assert.match(name, /^LK_[A-Z_]+$/);
    assert.ok(exitCodes.has(spec.exitCode), `${name}: exit code ${spec.exitCode}`);
    assert.notEqual(spec.exitCode, ExitCode.ok, `${name}: an error never exits 0 by default`);
    assert.ok(Number.isInteger(spec.httpStatus) && spec.httpStatus >= 400 && spec.httpStatus <= 599, `${name}: HTTP ${spec.httpStatus}`);
    assert.ok(spec.summary.length > 10, `${name}: summary`);
  }
  assert.deepEqual(Object.keys(ERRORS).sort(), Object.keys(EXPECTED).sort());
});

describe('each code maps to its exit code and HTTP status', () => {
  for (const code of Object.keys(EXPECTED) as ErrorCode[]) {
    test(code, () => {
      const err = new LatchkeyError(code, `something about source "a"`, { source: 'a' });
      assert.equal(err.code, code);
      assert.equal(err.exitCode, EXPECTED[code].exit);
      assert.equal(err.httpStatus, EXPECTED[code].http);
      assert.equal(isTransient(err), EXPECTED[code].exit === ExitCode.unreachable);
      // A caller may override the exit code (a transient cause of a usually fatal code); the status stays the code's.
      const overridden = new LatchkeyError(code, 'x', { exitCode: ExitCode.unreachable });
      assert.equal(overridden.exitCode, ExitCode.unreachable);
      assert.equal(overridden.httpStatus, EXPECTED[code].http);
    });
  }
});

test('no literal exit code outside src/core/errors.ts (use ExitCode)', async () => {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ts') && !p.endsWith(join('src', 'core', 'errors.ts'))) {
        const text = await readFile(p, 'utf8');
        const re = /exitCode\s*(?::|=|===|!==)\s*\d+\b|process\.exit\(\s*\d+\s*\)|exitCode\s*=\s*\d+\b/g;
        for (const m of text.matchAll(re)) found.push(`${relative(repoRoot, p)}: ${m[0]}`);
      }
    }
  };
  await walk(join(repoRoot, 'src'));
  assert.deepEqual(found, []);
});
