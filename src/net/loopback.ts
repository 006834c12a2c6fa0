/**
 * Loopback hosts: traffic to them never leaves the machine, so plain HTTP is acceptable there
 * (RFC 8252 §8.3 for redirects; RFC 9700 §2.6 asks for TLS everywhere else).
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
