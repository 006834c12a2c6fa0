import { BlockList, isIP } from 'node:net';
import { LatchkeyError } from '../core/errors.js';

/**
 * The proxies whose `X-Forwarded-*` headers the gateway believes: a list of CIDRs (none by
 * default). A request from any other peer has its forwarded headers ignored, whatever they say.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[] = []) {
    for (const cidr of cidrs) {
      const [addr = '', bits] = cidr.trim().split('/');
      const family = isIP(addr);
      if (family === 0) throw new LatchkeyError('LK_CONFIG_INVALID', `trusted proxy "${cidr}" is not an IP address or CIDR (e.g. 127.0.0.1/32, 10.0.0.0/8, ::1/128)`);
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) {
        this.#list.addAddress(addr, type);
        continue;
      }
      const prefix = Number(bits);
      if (!/^\d{1,3}$/.test(bits) || prefix > (family === 6 ? 128 : 32)) throw new LatchkeyError('LK_CONFIG_INVALID', `trusted proxy "${cidr}" has an invalid prefix length`);
      this.#list.addSubnet(addr, prefix, type);
    }
    this.size = cidrs.length;
  }

  /** Whether the peer at `address` (a socket's remoteAddress) is a trusted proxy. */
  trusts(address: string | undefined): boolean {
    if (this.size === 0 || !address) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    try {
      if (mapped?.[1]) return this.#list.check(mapped[1], 'ipv4');
      return this.#list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
  }
}
