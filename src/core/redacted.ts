/** What every value holding a secret prints as. */
export const REDACTED = '[redacted]';

/**
 * The base of every class that holds a secret ({@link Secret}, the gateway's seal key, a store
 * URL with its password): printing an instance in any way (`String()`, a template literal,
 * `JSON.stringify`, `console.log`, `util.inspect`, an error message) yields `[redacted]`.
 */
export abstract class Redacted {
  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  // = util.inspect.custom, without loading node:util at start-up.
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }
}
