import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientKey, LoginLimiter } from '../../../src/gateway/login-limiter.js';

test('a client has its burst, then one start per 60/perClientPerMinute s; Retry-After says when', () => {
  const l = new LoginLimiter({ perClientPerMinute: 6, perClientBurst: 2, allPerMinute: 1000 });
  const t = 1_000_000;
  assert.deepEqual(l.take('10.0.0.1', t), { ok: true });
  assert.deepEqual(l.take('10.0.0.1', t), { ok: true });
  assert.deepEqual(l.take('10.0.0.1', t), { ok: false, scope: 'client', retryAfterSeconds: 10, firstRefusal: true });
  assert.deepEqual(l.take('10.0.0.1', t + 4_000), { ok: false, scope: 'client', retryAfterSeconds: 6, firstRefusal: false }, 'refused again: not a new episode');
  assert.deepEqual(l.take('10.0.0.2', t), { ok: true }, 'another client has its own bucket');
  assert.deepEqual(l.take('10.0.0.1', t + 10_000), { ok: true }, 'one token back after 10 s');
  const again = l.take('10.0.0.1', t + 10_000);
  assert.equal(again.ok, false);
  assert.equal(!again.ok && again.firstRefusal, true, 'a start went through in between: a new episode');
  // Never more than the burst, however long it waited.
  assert.equal(l.take('10.0.0.1', t + 3_600_000).ok, true);
  assert.equal(l.take('10.0.0.1', t + 3_600_000).ok, true);
  assert.equal(l.take('10.0.0.1', t + 3_600_000).ok, false);
});

test('the limit for all clients: a refused start takes nothing from the client', () => {
  const l = new LoginLimiter({ perClientPerMinute: 60, perClientBurst: 5, allPerMinute: 2 });
  const t = 5_000;
  assert.equal(l.take('a', t).ok, true);
  assert.equal(l.take('b', t).ok, true);
  assert.deepEqual(l.take('c', t), { ok: false, scope: 'all', retryAfterSeconds: 30, firstRefusal: true });
  assert.equal(l.take('c', t + 30_000).ok, true, 'c still has its whole burst once all has a token again');
});

test('client keys: IPv4 as is (mapped ones unwrapped), IPv6 by /64 whatever the notation, anything else as given', () => {
  assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
  assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(clientKey('2001:db8:1:2::10'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:0DB8:0001:0002:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1:2:3:4'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('not-an-address'), 'not-an-address');
});

test('limits that are not positive numbers are refused, naming the field', () => {
  assert.throws(() => new LoginLimiter({ perClientBurst: 0 }), /loginRateLimit\.perClientBurst must be a positive number/);
  assert.throws(() => new LoginLimiter({ allPerMinute: Number.NaN }), /loginRateLimit\.allPerMinute/);
});
