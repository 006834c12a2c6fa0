import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { normalisePrefix, requestShape } from '../../../src/gateway/request-shape.js';
import { TrustedProxies } from '../../../src/gateway/trusted-proxies.js';

function req(peer: string, headers: Record<string, string>): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

test('forwarded headers count only from trusted proxies (IPv4, IPv6, v4-mapped)', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '::1/128']);
  const fwd = { host: 'internal:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.test', 'x-forwarded-prefix': '/dash/', 'x-forwarded-for': '203.0.113.7, 10.0.0.2' };
  for (const peer of ['10.1.2.3', '::ffff:10.1.2.3', '::1']) {
    const r = requestShape(req(peer, fwd), trusted);
    assert.ok(r.ok);
    assert.deepEqual({ https: r.shape.https, host: r.shape.host, prefix: r.shape.prefix, origin: r.shape.origin, client: r.shape.clientAddress }, { https: true, host: 'app.example.test', prefix: '/dash', origin: 'https://app.example.test', client: '203.0.113.7' });
  }
  // The client is the last hop that is not a trusted proxy: what the client wrote before it does not count.
  const spoofed = requestShape(req('10.1.2.3', { ...fwd, 'x-forwarded-for': '1.2.3.4, 203.0.113.7, 10.0.0.2' }), trusted);
  assert.ok(spoofed.ok && spoofed.shape.clientAddress === '203.0.113.7');
  const oversized = requestShape(req('10.1.2.3', { ...fwd, 'x-forwarded-for': `${'9.9.9.9, '.repeat(200)}203.0.113.7` }), trusted);
  assert.ok(oversized.ok && oversized.shape.clientAddress === '10.1.2.3', 'an oversized X-Forwarded-For is ignored');
  const untrusted = requestShape(req('192.168.1.5', fwd), trusted);
  assert.ok(untrusted.ok && untrusted.shape.clientAddress === '192.168.1.5', 'an untrusted peer is the client, whatever it forwards');
  assert.ok(untrusted.ok);
  assert.deepEqual({ https: untrusted.shape.https, host: untrusted.shape.host, prefix: untrusted.shape.prefix }, { https: false, host: 'internal:8080', prefix: '' });
  const none = requestShape(req('127.0.0.1', fwd), new TrustedProxies());
  assert.ok(none.ok && !none.shape.https && none.shape.prefix === '');
});

test('bad forwarded values from a trusted proxy and bad Host headers are refused by name', () => {
  const trusted = new TrustedProxies(['127.0.0.1']);
  const bad = (h: Record<string, string>): string | undefined => {
    const r = requestShape(req('127.0.0.1', { host: 'a.test', ...h }), trusted);
    return r.ok ? undefined : r.field;
  };
  assert.equal(bad({ 'x-forwarded-prefix': '/a/../b' }), 'X-Forwarded-Prefix');
  assert.equal(bad({ 'x-forwarded-proto': 'ftp' }), 'X-Forwarded-Proto');
  assert.equal(bad({ 'x-forwarded-host': 'a.test/evil' }), 'X-Forwarded-Host');
  assert.equal(bad({ host: 'a b' }), 'Host');
  assert.equal(bad({}), undefined);
});

test('prefixes: plain segments only', () => {
  assert.equal(normalisePrefix('/'), '');
  assert.equal(normalisePrefix('/a/b/'), '/a/b');
  for (const p of ['a', '//x', '/a//b', '/./a', '/a/..', '/%2e', '/a b', `/${'a'.repeat(300)}`]) assert.equal(normalisePrefix(p), undefined, p);
});

test('trusted proxy CIDRs are validated', () => {
  assert.throws(() => new TrustedProxies(['nonsense']), /not an IP address or CIDR/);
  assert.throws(() => new TrustedProxies(['10.0.0.0/33']), /prefix length/);
  assert.equal(new TrustedProxies(['10.0.0.0/8']).trusts('11.0.0.1'), false);
  assert.equal(new TrustedProxies([]).trusts('127.0.0.1'), false);
});
