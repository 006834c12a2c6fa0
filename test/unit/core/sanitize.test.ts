import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Secret } from '../../../src/core/secret.js';
import { REDACTED, sanitizeMessage, sanitizeRemoteText, WINDOW } from '../../../src/core/sanitize.js';

/** A fresh random token, registered by being held in a Secret (as the store and config do). */
function held(length = 43, prefix = ''): { value: string; secret: Secret } {
  const value = `${prefix}${randomBytes(length).toString('base64url')}`.slice(0, length);
  return { value, secret: new Secret(value) };
}

/** Every `n`-character piece of `value` found in `text`. */
function piecesIn(text: string, value: string, n = WINDOW): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= value.length; i++) if (text.includes(value.slice(i, i + n))) found.push(value.slice(i, i + n));
  return found;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

test('a piece of 8 or more characters of a held secret is redacted at every offset and length', () => {
  const { value } = held(40);
  for (let from = 0; from + WINDOW <= value.length; from++) {
    for (let to = from + WINDOW; to <= value.length; to++) {
      const out = sanitizeRemoteText(`before ${value.slice(from, to)} after`, 1000);
      assert.equal(out, `before ${REDACTED} after`, `piece ${from}..${to}`);
    }
  }
  // Seven characters are not a piece: ordinary text keeps its words.
  assert.equal(sanitizeRemoteText(`id ${value.slice(3, 10)} ok`), `id ${value.slice(3, 10)} ok`);
});

test('a piece glued to other text on both sides is still found', () => {
  const { value } = held(30);
  const out = sanitizeRemoteText(`..${value.slice(5, 17)}::${value}~~`, 1000);
  assert.deepEqual(piecesIn(out, value), []);
  assert.equal(out, `..${REDACTED}::${REDACTED}~~`); // separators outside the tokens' alphabet
});

test('every kind of secret held is redacted, not only the one a request sent', () => {
  const kinds = [held(43), held(43), held(20, 'client-'), held(40, 'ghp_'), held(32, 'sid-'), held(24, 'csrf-')];
  const text = kinds.map((k, i) => `k${i}=${k.value}`).join(' ');
  const out = sanitizeRemoteText(text, 1000);
  for (const k of kinds) assert.deepEqual(piecesIn(out, k.value), []);
  assert.equal(out, kinds.map((_, i) => `k${i}=${REDACTED}`).join(' '));
});

test('overlapping and adjacent secrets become one redacted run', () => {
  const shared = randomBytes(12).toString('hex');
  const a = new Secret(`AAAA${shared}aaaa`);
  const b = new Secret(`${shared}bbbbbbbb`);
  // a's head, the part both share, b's tail: covered by one or the other all along.
  const out = sanitizeRemoteText(`[AAAA${shared}bbbbbbbb]`, 1000);
  assert.equal(out, `[${REDACTED}]`);
  const c = held(16);
  const d = held(16);
  assert.equal(sanitizeRemoteText(`${c.value}${d.value}`, 1000), REDACTED);
  assert.equal(a.length + b.length > 0, true);
});

test('short secrets (6 or 7 characters) are matched whole only; shorter ones never', () => {
  const six = new Secret('Zq7Kx2');
  const four = new Secret('Wv9p');
  assert.equal(sanitizeRemoteText('code Zq7Kx2 and Zq7Kx'), `code ${REDACTED} and Zq7Kx`);
  assert.equal(sanitizeRemoteText('Wv9p stays'), 'Wv9p stays');
  assert.ok(six.length + four.length > 0);
});

test('unicode: secrets with non-ASCII characters, text with emoji, no half characters left', () => {
  const s = new Secret('pässwörd-ключ-🔑-секрет');
  const out = sanitizeRemoteText('héllo 🔑 pässwörd-ключ-🔑-секрет — ünïcode ✓', 1000);
  assert.equal(out, `héllo 🔑 ${REDACTED} — ünïcode ✓`);
  assert.ok(s.length > 0);
  // A piece that starts inside an emoji (its low surrogate) leaves no lone high surrogate.
  const piece = sanitizeRemoteText('x🔑-секрет y'.replace('x', 'ключ-'), 1000);
  assert.equal(piece, `${REDACTED} y`);
  // A cut that falls between the two halves of a surrogate pair does not print half of it.
  const cut = sanitizeRemoteText(`${'a'.repeat(9)}🔑🔑`, 10);
  assert.ok(!/[\ud800-\udfff](?![\udc00-\udfff])/.test(cut.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')), JSON.stringify(cut));
});

test('control characters go before redaction: a secret split by them is found whole', () => {
  const { value } = held(30);
  for (const c of ['\u0000', '\u0007', '\u007f', '\u0080', '\u0095', '\u200b', '\u202e', '\ufeff']) {
    const out = sanitizeRemoteText(`t ${value.slice(0, 4)}${c}${value.slice(4, 11)}${c}${value.slice(11)} e`, 1000);
    assert.deepEqual(piecesIn(out, value, 4), [], JSON.stringify(out));
    assert.ok(!CONTROL.test(out), JSON.stringify(out));
  }
  // Line breaks (NEL included) become one space, as on a terminal.
  assert.equal(sanitizeRemoteText('line one\r\nline\ttwo\u2028three\u0085four'), 'line one line two three four');
});

test('ANSI CSI and OSC sequences are removed whole, not only their ESC byte', () => {
  const { value } = held(43);
  const cases: Array<[string, string]> = [
    [`\x1b[31m${value}\x1b[0m`, REDACTED],
    [`red \x1b[1;31mALERT\x1b[0m`, 'red ALERT'],
    [`\x1b]8;;https://evil.example/?t=${value}\x07click\x1b]8;;\x07 here`, 'click here'],
    [`\x1b]0;pwned title\x1b\\after`, 'after'],
    [`\x1b]52;c;${Buffer.from('rm -rf ~').toString('base64')}\x07clip`, 'clip'],
    [`a\u009b2Jb\u009d0;t\u009cc`, 'abc'],
    [`x\x1bPq#0;2;0;0;0\x1b\\y`, 'xy'],
    [`x\x1b(By\x1bcz\x1b7w`, 'xyzw'],
    [`keep\x1b]0;unterminated ${value}`, 'keep'],
    [`${value.slice(0, 20)}\x1b[2K${value.slice(20)}`, REDACTED],
  ];
  for (const [input, expected] of cases) {
    const out = sanitizeRemoteText(input, 1000);
    assert.equal(out, expected, JSON.stringify(input));
    assert.ok(!out.includes('\x1b') && !out.includes('\x07'), JSON.stringify(out));
  }
});

test('a long text is cut after redaction: a secret straddling the cut leaves no piece, at every offset 0..250', () => {
  const { value } = held(43);
  for (let at = 0; at <= 250; at++) {
    const text = `${'d'.repeat(at)}${value}${' tail'.repeat(60)}`;
    for (const max of [200, 64]) {
      const out = sanitizeRemoteText(text, max);
      assert.deepEqual(piecesIn(out, value), [], `offset ${at}, cut ${max}: ${out}`);
      assert.ok(out.length <= max + 1, `offset ${at}: ${out.length} characters`);
      assert.ok(out.endsWith('…'), 'the cut is said');
      if (at + WINDOW <= max - REDACTED.length) assert.ok(out.includes(REDACTED), `offset ${at}: the redaction is shown`);
    }
  }
  // Short text is not cut, and plain text is not changed.
  assert.equal(sanitizeRemoteText('short'), 'short');
  assert.equal(sanitizeRemoteText('x'.repeat(300)).length, 201);
});

test('a huge text is bounded in work and output', () => {
  const { value } = held(43);
  const out = sanitizeRemoteText(`${'z'.repeat(5_000_000)}${value}`);
  assert.equal(out.length, 201);
  assert.deepEqual(piecesIn(sanitizeRemoteText(`${value}${'z'.repeat(5_000_000)}`), value), []);
});

test('sanitizeMessage keeps lines but removes escapes and secret pieces', () => {
  const { value } = held(43);
  assert.equal(sanitizeMessage(`first ${value.slice(2, 30)}\n\tsecond \x1b[2J\x1b]0;t\x07line`), `first ${REDACTED}\n\tsecond line`);
});

test('a secret held in a Secret stays known while thousands of others come and go', () => {
  const kept = held(43);
  for (let i = 0; i < 5000; i++) void new Secret(`transient-${i}-${randomBytes(8).toString('hex')}`);
  assert.equal(sanitizeRemoteText(`x ${kept.value} y`), `x ${REDACTED} y`);
  assert.ok(kept.secret.length > 0);
});

test('a LatchkeyError built with a secret in its message or fix never carries it', async () => {
  const { LatchkeyError } = await import('../../../src/core/errors.js');
  const { value } = held(43);
  const e = new LatchkeyError('LK_REFRESH_FAILED', `refused ${value}\x1b]0;x\x07`, { fix: `run ${value.slice(0, 12)}` });
  assert.equal(e.message, `refused ${REDACTED}`);
  assert.equal(e.fix, `run ${REDACTED}`);
});

test('what the keeper keeps and what health reads from disk is sanitized: a verdict, an older keeper-state.json, a hand-edited health.json', async (t) => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { applyVerdict, emptySourceState, loadKeeperState } = await import('../../../src/keeper/state.js');
  const { readHealthReport } = await import('../../../src/keeper/health-report.js');
  const dir = await mkdtemp(join(tmpdir(), 'lk-sanitize-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { value } = held(43);
  const hostile = `refused ${value} \x1b]0;pwned\x07\x1b[2Jnow`;
  const clean = `refused ${REDACTED} now`;

  const at = '2030-01-01T00:00:00.000Z';
  const applied = applyVerdict('s', emptySourceState(), { status: 'action_required', authPath: 'token', operatorAction: 'replace_token', fix: hostile, message: hostile, expiresAt: null, latencyMs: 1, at }, 16);
  assert.equal(applied.next.message, clean);
  assert.equal(applied.next.fix, clean);
  assert.equal(applied.change?.message, clean, 'the alert carries the sanitized text too');

  const statePath = join(dir, 'keeper-state.json');
  await writeFile(statePath, JSON.stringify({ version: 1, savedAt: at, cycles: 1, sources: { s: { ...emptySourceState(), status: 'action_required', message: hostile, fix: hostile } } }));
  const loaded = await loadKeeperState(statePath, Date.parse(at));
  assert.equal(loaded.kind, 'loaded');
  assert.equal(loaded.state.sources.s?.message, clean);
  assert.equal(loaded.state.sources.s?.fix, clean);

  const healthPath = join(dir, 'health.json');
  await writeFile(healthPath, JSON.stringify({ generatedAt: at, intervalSeconds: 60, sources: { s: { status: 'action_required', message: hostile, fix: hostile, history: [] } } }));
  const report = await readHealthReport(healthPath);
  assert.equal(report?.sources.s?.message, clean);
  assert.equal(report?.sources.s?.fix, clean);
});

test('the registry forgets values no Secret holds any more (rotated-away tokens): it stays bounded, and what is held stays known', async () => {
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  const { registeredSecretCount } = await import('../../../src/core/secret-index.js');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const kept = held(43);
  const before = registeredSecretCount();
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < 3000; i++) void new Secret(`rotated-${round}-${i}-${randomBytes(12).toString('base64url')}`);
    sanitizeRemoteText('a search between rotations brings the index up to date');
    // WeakRef targets live until the current job ends: let it end, then collect.
    await new Promise((r) => setImmediate(r));
    gc();
  }
  const grown = registeredSecretCount() - before;
  assert.ok(grown < 15_000, `36,000 values came and went; ${grown} are still registered`);
  assert.equal(sanitizeRemoteText(`x ${kept.value} y`), `x ${REDACTED} y`);
  assert.ok(kept.secret.length > 0);
});
