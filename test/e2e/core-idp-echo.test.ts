import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { idpHome } from '../helpers/lk.js';
import type { EngineEvent } from '../../src/engine/fresh-token.js';
import type { LatchkeyError } from '../../src/errors.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});

// A fault the real IdP cannot produce: an error_description that quotes the refresh token.
for (const [status, error] of [
  [400, 'invalid_grant'],
  [400, 'invalid_request'],
] as const) {
  test(`an IdP that quotes the refresh token in error_description (${error}) never gets it into a message or the store`, async (t) => {
    const h = await idpHome(idp);
    t.after(() => h.cleanup());
    const grant = await idp.mintGrant();
    const events: EngineEvent[] = [];
    const lk = await h.open({ onRefresh: (e) => events.push(e) });
    await lk.installGrant('idp', grant);
    h.clock.advance(29_000);
    idp.setFault({ kind: 'json', status, body: { error, error_description: `refresh token ${grant.refresh_token} is not valid for this client` } });
    t.after(() => idp.setFault(null));
    let message = '';
    try {
      message = `token ${await lk.token('idp')}`;
    } catch (err) {
      message = `${(err as LatchkeyError).message} ${String((err as LatchkeyError).fix)}`;
    }
    assert.ok(!message.includes(grant.refresh_token), message);
    for (const e of events) assert.ok(!String(e.message).includes(grant.refresh_token), `event: ${e.message}`);
    assert.ok(events.some((e) => String(e.message).includes('[redacted]')), 'the description is kept, with the token redacted');
    const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
    assert.ok(!doc.lastFailure.message.includes(grant.refresh_token), doc.lastFailure.message);
    assert.ok(!JSON.stringify(await lk.status()).includes(grant.refresh_token));
  });
}
