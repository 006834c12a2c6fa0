/**
 * Runs inside `dbus-run-session` with an unlocked GNOME Keyring (spawned by keyring.test.ts):
 * the `keyring:` reference end to end through the CLI and the library. Exits non-zero with the
 * failed assertion on stderr.
 */
import assert from 'node:assert/strict';
import { resolveConfig } from '../../src/config/load.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { Latchkey } from '../../src/latchkey.js';
import { homePaths } from '../../src/paths.js';
import { makeHome, runCli } from '../helpers/home.js';

const REF = `keyring:latchkey-test/pat-${process.pid}`;
const VALUE = 'tok-Keyring-Value-0123456789';
const UNICODE = 'päss-🔑-with spaces';

async function main(): Promise<void> {
  const home = await makeHome({ version: 1, sources: { gh: { token: { secret: REF } } } });
  const env = { LATCHKEY_HOME: home.home, DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS ?? '' };
  try {
    const set = await runCli(['secrets', 'set', REF], { env, input: `${VALUE}\n` });
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`stored ${REF} \\(${VALUE.length} characters\\)`));

    const get = await runCli(['secrets', 'get', REF], { env });
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /resolves \(28 characters\)/);
    assert.ok(!get.stdout.includes(VALUE) && !get.stderr.includes(VALUE), 'get without --reveal never prints the value');

    const reveal = await runCli(['secrets', 'get', REF, '--reveal'], { env });
    assert.equal(reveal.code, 0, reveal.stderr);
    assert.equal(reveal.stdout, `${VALUE}\n`);

    // The library resolves the same reference (a token source and resolveSecretRef).
    const config = resolveConfig({ version: 1, sources: { gh: { token: { secret: REF } } } }, home.configPath);
    const lk = new Latchkey(config, { paths: homePaths(home.home), env: process.env });
    assert.equal(await lk.token('gh'), VALUE);
    assert.equal((await resolveSecretRef(REF)).reveal(), VALUE);

    // `latchkey token` in another process reads it from the keyring.
    const tok = await runCli(['token', 'gh'], { env });
    assert.equal(tok.code, 0, tok.stderr);
    assert.equal(tok.stdout, `${VALUE}\n`);

    // Replacing works, and non-ASCII survives.
    const set2 = await runCli(['secrets', 'set', REF], { env, input: UNICODE });
    assert.equal(set2.code, 0, set2.stderr);
    assert.equal((await resolveSecretRef(REF)).reveal(), UNICODE);

    const rm = await runCli(['secrets', 'rm', REF], { env });
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, /removed/);
    const rm2 = await runCli(['secrets', 'rm', REF], { env });
    assert.equal(rm2.code, 0, rm2.stderr);
    assert.match(rm2.stdout, /nothing to remove/);

    const gone = await runCli(['secrets', 'get', REF], { env });
    assert.equal(gone.code, 4);
    assert.match(gone.stderr, /no entry in the keyring/);
    assert.match(gone.stderr, new RegExp(`fix: latchkey secrets set ${REF}`));
    process.stdout.write('keyring scenario ok\n');
  } finally {
    await runCli(['secrets', 'rm', REF], { env }).catch(() => undefined);
    await home.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
