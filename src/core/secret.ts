import { Redacted } from './redacted.js';
import { registerSecret } from './secret-index.js';

/**
 * A secret value (access token, refresh token, cookie, client secret).
 *
 * Printing it in any way (`String()`, template literals, `JSON.stringify`, `console.log`,
 * `util.inspect`, an error message) yields `[redacted]`; only {@link Secret.reveal} returns
 * the value, so every place that sends a secret over the wire is greppable.
 */
export class Secret extends Redacted {
  readonly #value: string;

  constructor(value: string) {
    super();
    this.#value = value;
    // Text from elsewhere is searched for every secret this process holds (src/sanitize.ts).
    registerSecret(this, value);
  }

  /** The raw value. Call it only where the value is sent to the party that issued it. */
  reveal(): string {
    return this.#value;
  }

  /** Constant-time-ish equality with another secret (same length compare). */
  equals(other: Secret | undefined): boolean {
    if (!other) return false;
    const a = this.#value;
    const b = other.reveal();
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
  }

  get length(): number {
    return this.#value.length;
  }
}

/** Wraps a string as a {@link Secret} (shorthand for `new Secret(value)`). */
export function secret(value: string): Secret {
  return new Secret(value);
}
