import { randomBytes } from 'node:crypto';
import { Secret } from '../core/secret.js';
import type { Store } from '../store/store.js';
import type { SealKey } from './seal.js';

/**
 * WebSocket tickets: 32 random bytes (base64url), single use, 30 s, bound to the session that
 * minted it and to the `Origin` it was minted from. Stored in the store's `tickets` keyspace
 * (sealed), taken out with the store's atomic `consume`: of several gateway processes presented
 * the same ticket, exactly one accepts it.
 */

/** How long a WebSocket ticket is good for (it is also good only once). */
export const TICKET_TTL_SECONDS = 30;
export const TICKET_FORMAT = /^[A-Za-z0-9_-]{43}$/;

export interface TicketClaims {
  sid: string;
  /** The minting request's Origin, or '' when it sent none (a desktop or CLI client). */
  origin: string;
}

export type TicketCheck = { ok: true; claims: TicketClaims } | { ok: false; reason: 'malformed' | 'unknown' | 'origin' };

export class Tickets {
  readonly #store: Store;
  readonly #key: SealKey;

  constructor(store: Store, key: SealKey) {
    this.#store = store;
    this.#key = key;
  }

  async mint(claims: TicketClaims): Promise<string> {
    const ticket = randomBytes(32).toString('base64url');
    const value = new Secret(this.#key.seal(JSON.stringify({ s: claims.sid, o: claims.origin }), `ticket:${ticket}`));
    await this.#store.put('tickets', `ws:${ticket}`, value, TICKET_TTL_SECONDS * 1000);
    return ticket;
  }

  /** Takes the ticket out (whatever the outcome: a ticket shown from the wrong Origin is burnt too). */
  async redeem(ticket: string, origin: string | undefined): Promise<TicketCheck> {
    if (!TICKET_FORMAT.test(ticket)) return { ok: false, reason: 'malformed' };
    const value = await this.#store.consume('tickets', `ws:${ticket}`);
    if (value === undefined) return { ok: false, reason: 'unknown' };
    const raw = this.#key.openJson(value.reveal(), `ticket:${ticket}`);
    if (!raw || typeof raw.s !== 'string' || typeof raw.o !== 'string') return { ok: false, reason: 'unknown' };
    if (raw.o !== (origin ?? '')) return { ok: false, reason: 'origin' };
    return { ok: true, claims: { sid: raw.s, origin: raw.o } };
  }
}
