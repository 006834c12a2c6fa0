import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { cliPath, makeHome, type CliResult, type TempHome } from '../helpers/home.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';
import { KeeperProcess } from './keeper-support.js';

/**
 * A canary IdP and API that echo every secret the profile holds back at us, at offsets 0 to
 * 250 of their text, wrapped in (and interleaved with) terminal escape sequences: the token
 * endpoint's error_description, the revocation endpoint's answer, an API's 401 body and its
 * WWW-Authenticate header, a session renewal's answer. Then every command's stdout and
 * stderr, every file under LATCHKEY_HOME but the store, the keeper's HTTP answers and the
 * process titles are searched for any 10-character piece of any secret and for ESC/BEL.
 * (core-canary.test.ts sweeps bad stores and configs; this file sweeps hostile upstream text.)
 */

const PIECE = 10;
const token = (prefix: string, bytes: number): string => `${prefix}${randomBytes(bytes).toString('base64url')}`;
const PAT = token('lkpat_', 30);
const CLIENT_SECRET = token('cs_', 30);
const SESSION_COOKIE = token('sid_', 30);
const CSRF_TOKEN = token('csrf_', 24);

/** Escape sequences put around and between the echoed secrets (CSI, OSC 8 hyperlink, OSC title, 8-bit CSI, DCS). */
const WRAPS: Array<(s: string) => string> = [
  (s) => `\x1b[1;31m${s}\x1b[0m`,
  (s) => `\x1b]8;;https://evil.example/?t=${s}\x07${s}\x1b]8;;\x07`,
  (s) => `\x1b]0;${s}\x1b\\${s}`,
  (s) => `\u009b2J${s}\x1b[K`,
  (s) => `\x1bP+q${s}\x1b\\${s.slice(0, 20)}\x07${s.slice(20)}`,
];

let idp: Idp;
let api: LoopbackApi;
/** What the canary upstreams echo right now. */
let echo = '';

before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
  api = await startLoopbackApi((req, res) => {
    const description = JSON.stringify({ error: 'invalid_request', error_description: echo });
    if (req.path === '/revoke') return send(res, 400, description);
    // A header cannot carry control characters: the same text without them.
    // eslint-disable-next-line no-control-regex
    const plain = echo.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, '');
    send(res, 401, JSON.stringify({ error: 'invalid_token', error_description: echo }), {
      'www-authenticate': `Bearer realm="canary", error="invalid_token", error_description="${plain}"`,
    });
  });
});
after(async () => {
  await api?.close();
  await idp?.close();
});

interface Round {
  h: TempHome;
  env: NodeJS.ProcessEnv;
  secrets: string[];
}

/** The echo: filler up to `offset`, then every secret (rotated by `turn`), each wrapped in escapes. */
function echoText(secrets: string[], offset: number, turn: number): string {
  const order = secrets.map((_, i) => secrets[(i + turn) % secrets.length]!);
  return `\x1b[31m${'e'.repeat(offset)}${order.map((s, i) => WRAPS[(i + turn) % WRAPS.length]!(s)).join(' and ')} was refused\x1b[0m\x07`;
}

/** Runs the CLI, recording its /proc cmdline (the process title) while it runs. */
function run(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<CliResult & { args: string[]; titles: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_NO_BROWSER: '1', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const titles: string[] = [];
    const title = (): void => void readFile(`/proc/${child.pid}/cmdline`, 'utf8').then((t) => titles.push(t), () => undefined);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      title();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      title();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, args, titles });
    });
    title();
    child.stdin.end(input);
  });
}

/** Fails naming where a 10-character piece of a secret, or an ESC/BEL byte, turned up. */
function assertClean(where: string, text: string, secrets: string[], allowed?: string): void {
  const scrubbed = allowed === undefined ? text : text.replace(`${allowed}\n`, '');
  for (const s of secrets) {
    for (let i = 0; i + PIECE <= s.length; i++) {
      const piece = s.slice(i, i + PIECE);
      assert.ok(!scrubbed.includes(piece), `${where}: a piece of a secret (${piece}) leaked:\n${text.slice(0, 3000)}`);
    }
  }
  // eslint-disable-next-line no-control-regex
  assert.ok(!/[\x1b\x07\u009b\u009d]/.test(text), `${where}: a terminal escape leaked: ${JSON.stringify(text.slice(0, 3000))}`);
  // JSON output escapes them: a consumer printing the field would still send them to a terminal.
  assert.ok(!/\\u00(1b|07|9b|9d)/i.test(text), `${where}: a terminal escape leaked (JSON-escaped): ${text.slice(0, 3000)}`);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function profile(t: { after(fn: () => Promise<void>): void }): Promise<Round> {
  const h = await makeHome({
    version: 1,
    sources: {
      api: {
        oauth: { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: api.url('/revoke'), clientId: 'basic-client', clientSecret: 'env:CS', clientAuth: 'client_secret_basic' },
        probe: { url: api.url('/probe') },
      },
      pat: { token: { secret: 'env:PAT' }, probe: { url: api.url('/probe') } },
      sess: {
        session: { origin: api.origin, cookieHeader: 'env:COOKIE', csrfCookie: 'csrf', csrfHeader: 'x-csrf-token', renewUrl: api.url('/renew') },
        probe: { url: api.url('/probe') },
      },
    },
  });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, PAT, CS: CLIENT_SECRET, COOKIE: `sid=${SESSION_COOKIE}; csrf=${CSRF_TOKEN}` };
  return { h, env, secrets: [PAT, CLIENT_SECRET, SESSION_COOKIE, CSRF_TOKEN] };
}

test('canary: secrets echoed by the IdP, the revocation endpoint, an API (body and WWW-Authenticate) and a session renewal, at offsets 0..250 with escapes, never leak', async (t) => {
  const p = await profile(t);
  const offsets = [0, 23, 61, 104, 149, 177, 191, 199, 226, 250];
  const seen: string[] = [...p.secrets];
  for (const [turn, offset] of offsets.entries()) {
    idp.setFault(null);
    const grant = await idp.mintGrant({ clientId: 'basic-client' });
    const secrets = [grant.refresh_token, grant.access_token, ...p.secrets];
    seen.push(grant.refresh_token, grant.access_token);
    echo = echoText(secrets, offset, turn);
    // Due for refresh now: every command that needs the token asks the (echoing) token endpoint.
    const imported = await run(['import', 'api', '--grant', '-'], p.env, JSON.stringify({ ...grant, expires_in: 1 }));
    assert.equal(imported.code, 0, imported.stderr);
    await new Promise((r) => setTimeout(r, 700)); // past the refresh point (a third of the 1 s lifetime before expiry)
    idp.setFault({ kind: 'json', status: 400, body: { error: turn % 2 === 0 ? 'invalid_request' : 'invalid_grant', error_description: echo } });
    const results = [imported];
    results.push(await run(['token', 'api'], p.env));
    results.push(
      ...(await Promise.all([
        run(['token', 'pat'], p.env),
        run(['token', 'sess'], p.env),
        run(['status'], p.env),
        run(['status', '--json'], p.env),
        run(['preflight'], p.env),
        run(['preflight', '--json', '--live', '--budget', '5000'], p.env),
        run(['health'], p.env),
        run(['health', '--json'], p.env),
      ])),
    );
    results.push(
      ...(await Promise.all([
        run(['fetch', 'api', api.url('/data')], p.env),
        run(['fetch', 'pat', api.url('/data')], p.env),
        run(['fetch', 'sess', api.url('/data')], p.env),
        run(['import', 'api', '--grant', '-'], p.env, `{"access_token": "${grant.access_token}", "refresh_token": ${grant.refresh_token}`),
      ])),
    );
    results.push(await run(['keeper', '--once', '--port', '0'], p.env));

    // The keeper's HTTP answers, its log and its process title, while it holds the profile.
    const k = KeeperProcess.start(['--port', '0', '--interval', '60'], p.env);
    try {
      const started = await k.waitFor((e) => e.event === 'started');
      await k.waitFor((e) => e.event === 'cycle');
      const base = String(started.url);
      for (const path of ['/api/health', '/', '/metrics', '/readyz']) {
        const res = await fetch(`${base}${path}`);
        assertClean(`keeper GET ${path} (offset ${offset})`, `${JSON.stringify([...res.headers])}\n${await res.text()}`, seen);
      }
      assertClean(`keeper process title (offset ${offset})`, await readFile(`/proc/${k.child.pid}/cmdline`, 'utf8'), seen);
    } finally {
      k.child.kill('SIGTERM');
      await k.exited;
    }
    assertClean(`keeper stdout/stderr (offset ${offset})`, k.stdout + k.stderr, seen);

    results.push(await run(['logout', 'api'], p.env));
    results.push(await run(['logout', 'api', '--force'], p.env));
    // The echoes did reach the commands (else this test proves nothing): the IdP's text in
    // what `token` / `status` / `health` say, the revocation endpoint's in `logout`'s failure.
    const quoted = (r: CliResult): boolean => `${r.stdout}${r.stderr}`.includes(offset < 150 ? '[redacted]' : 'eeeeeeeeee');
    assert.ok(results.some((r) => r.args[0] !== 'logout' && quoted(r)), `no command quotes the token endpoint's text (offset ${offset})`);
    const logoutApi = results.find((r) => r.args.join(' ') === 'logout api')!;
    assert.ok(quoted(logoutApi), `latchkey logout api quotes the revocation endpoint's text: ${logoutApi.stderr}`);
    for (const r of results) {
      const where = `latchkey ${r.args.join(' ')} (offset ${offset}, turn ${turn})`;
      assert.notEqual(r.code, null, `${where} did not finish`);
      // `token` prints the token it was asked for, and only that.
      const prints = r.args[0] === 'token' ? (r.args[1] === 'api' ? grant.access_token : r.args[1] === 'pat' ? PAT : undefined) : undefined;
      assertClean(`${where} stdout`, r.stdout, seen, prints);
      assertClean(`${where} stderr`, r.stderr, seen);
      for (const title of r.titles) assertClean(`${where} process title`, title, seen);
    }
    // The store legitimately holds secrets; nothing else under LATCHKEY_HOME does.
    for (const file of await filesUnder(p.h.home)) {
      if (file === p.h.storePath) continue;
      assertClean(`${file} (offset ${offset})`, await readFile(file, 'utf8'), seen);
    }
    // The store holds the secrets, but not in the failure it recorded.
    const doc = JSON.parse(await readFile(p.h.storePath, 'utf8')) as { sources: Record<string, { lastFailure?: { message: string } }> };
    for (const [name, rec] of Object.entries(doc.sources)) if (rec.lastFailure) assertClean(`store lastFailure of ${name}`, rec.lastFailure.message, seen);
  }
  idp.setFault(null);
});
