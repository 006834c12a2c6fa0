import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { launchBrowser, skipUnlessBrowser } from '../fixtures/browser.js';
import { startIdp } from '../fixtures/idp.js';
import { makeHome, repoRoot } from '../helpers/home.js';
import { send, startLoopbackApi } from '../helpers/loopback-api.js';
import { openLatchkey } from '../../src/latchkey.js';
import { startKeeperDaemon } from '../../src/keeper/daemon.js';
import { jsonLineLog } from '../../src/keeper/log.js';
import { systemClock } from '../../src/core/clock.js';

/**
 * The dashboard in real headless Chromium, served by a real keeper (1 s interval) over real
 * sources: one per health state, plus an OAuth grant at the real IdP that is revoked while the
 * page is open. Screenshots go to test-output/ for a person to look at.
 */
test('dashboard renders every state; a grant revoked at the IdP turns its row action_required with `latchkey login idp`', async (t) => {
  if (!skipUnlessBrowser(t)) return;
  const idp = await startIdp({ accessTokenTtl: 300 });
  t.after(() => idp.close());
  const api = await startLoopbackApi((req, res) => {
    const path = req.path.split('?')[0];
    if (path === '/dead') return send(res, 401, '{"error":"revoked"}');
    if (path === '/busy') return send(res, 503, '{"error":"maintenance"}');
    if (path === '/stall') return undefined;
    send(res, 200, '{"ok":true}');
  });
  t.after(() => api.close());
  const token = (path: string, extra: Record<string, unknown> = {}) => ({ token: { secret: 'env:TOK', ...extra }, probe: { url: api.url(path) } });
  const h = await makeHome({
    version: 1,
    sources: {
      idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, authorizationEndpoint: idp.authorizationEndpoint, clientId: 'public-client' }, probe: { url: idp.protectedUrl } },
      github: token('/ok'),
      hubspot: token('/ok', { expiresAt: new Date(Date.now() + 3 * 86_400_000).toISOString() }),
      slack: token('/busy'),
      honcho: token('/stall'),
      notion: token('/dead'),
    },
    keeper: { probeTimeoutMs: 500 },
  });
  const grant = await idp.mintGrant();
  const lk = await openLatchkey({ home: h.home, env: {} });
  await lk.installGrant('idp', grant);
  await lk.close();

  let logText = '';
  const daemon = await startKeeperDaemon({
    home: h.home,
    env: { TOK: 'tok-0123456789' },
    port: 0,
    intervalSeconds: 1,
    log: jsonLineLog({ write: (c: string) => (logText += c) }, systemClock),
    // The probes here time out at 500 ms: shorter than the 1 s pause before a refused refresh
    // token is confirmed, which would show the revoked grant as unreachable for one cycle first.
    open: { confirmRefusalDelayMs: 100 },
  });
  t.after(() => daemon.stop());
  // After hooks run in the order registered: the home goes once the keeper writing to it stopped.
  t.after(() => h.cleanup());
  const url = `${daemon.http!.url}/`;

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const cspErrors: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
  });
  await page.goto(url);
  await page.waitForSelector('main#app[data-state="ready"]', { timeout: 15_000 });
  const expected: Record<string, string> = {
    idp: 'ok',
    github: 'ok',
    hubspot: 'expiring',
    slack: 'degraded',
    honcho: 'unreachable',
    notion: 'action_required',
  };
  for (const [source, status] of Object.entries(expected)) {
    await page.waitForSelector(`li[data-source="${source}"][data-status="${status}"]`, { timeout: 15_000 });
  }
  assert.match((await page.textContent('li[data-source="notion"] .fix')) ?? '', /TOK/, 'the exact fix is shown');
  assert.deepEqual(cspErrors, [], 'the page runs under its CSP without violations');

  // "Probe now" goes through POST /api/probe with the CSRF header, and answers.
  await page.click('button[data-probe="github"]');
  await page.waitForSelector('#note:not([hidden])', { timeout: 10_000 });
  assert.match((await page.textContent('#note')) ?? '', /Probed github/);

  // Revoke the grant at the IdP: the keeper's next cycle (≤ 1 interval) sees it; the page shows it at its next poll.
  const revokedAt = Date.now();
  assert.ok(await idp.revokeGrantOf(grant.refresh_token));
  let keeperMs = -1;
  for (;;) {
    const s = daemon.keeper.report.sources.idp;
    if (s?.status === 'action_required') {
      keeperMs = Date.now() - revokedAt;
      break;
    }
    if (Date.now() - revokedAt > 10_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(keeperMs >= 0, 'the keeper noticed the revocation');
  // One interval (1 s, +10 % jitter) plus the cycle that notices it (probe + refresh attempt).
  assert.ok(keeperMs <= 2500, `keeper noticed after ${keeperMs} ms`);
  assert.equal(daemon.keeper.report.sources.idp?.fix, 'latchkey login idp');
  await page.waitForSelector('li[data-source="idp"][data-status="action_required"]', { timeout: 10_000 });
  const pageMs = Date.now() - revokedAt;
  // The page polls at the keeper's interval (1 s here): the row follows the report within one more interval.
  assert.ok(pageMs <= keeperMs + 2500, `dashboard row turned after ${pageMs} ms (keeper after ${keeperMs} ms)`);
  assert.equal((await page.textContent('li[data-source="idp"] .fix'))?.trim(), 'latchkey login idp');
  t.diagnostic(`revocation: keeper report after ${keeperMs} ms, dashboard row after ${pageMs} ms`);

  const out = join(repoRoot, 'test-output');
  await mkdir(out, { recursive: true });
  await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });
  const phone = await browser.newPage({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await phone.goto(url);
  await phone.waitForSelector('li[data-source="idp"][data-status="action_required"]', { timeout: 15_000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 375 px (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(out, 'dashboard-375.png'), fullPage: true });
  assert.match(logText, /"event":"state_change","source":"idp","from":"ok","to":"action_required"/);
});
