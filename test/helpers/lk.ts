import { openLatchkey, type Latchkey, type OpenLatchkeyOptions } from '../../src/latchkey.js';
import type { Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from './home.js';

/** Real time plus an offset that a test can move forward (the IdP keeps real time). */
export class TestClock {
  offset = 0;
  now = (): number => Date.now() + this.offset;
  advance(ms: number): void {
    this.offset += ms;
  }
}

export interface IdpHome extends TempHome {
  clock: TestClock;
  open(options?: OpenLatchkeyOptions): Promise<Latchkey>;
}

/**
 * A profile with one oauth source `idp` pointing at the fixture IdP's token and authorization
 * endpoints (so `latchkey login idp` can run, and is the fix a revoked grant gets).
 */
export async function idpHome(idp: Idp, opts: { clientId?: string; clientSecretEnv?: string; clientAuth?: string; source?: string } = {}): Promise<IdpHome> {
  const oauth: Record<string, unknown> = { tokenEndpoint: idp.tokenEndpoint, authorizationEndpoint: idp.authorizationEndpoint, clientId: opts.clientId ?? 'public-client' };
  if (opts.clientSecretEnv) oauth.clientSecret = `env:${opts.clientSecretEnv}`;
  if (opts.clientAuth) oauth.clientAuth = opts.clientAuth;
  const h = await makeHome({ version: 1, sources: { [opts.source ?? 'idp']: { oauth, probe: { url: idp.protectedUrl } } } });
  const clock = new TestClock();
  return {
    ...h,
    clock,
    open: (options = {}) => openLatchkey({ home: h.home, clock, env: {}, ...options }),
  };
}
