/** Time source, injected so tests can move time without sleeping. Milliseconds since epoch. */
export interface Clock {
  now(): number;
}

/** The wall clock (`Date.now()`): the default {@link Clock}. */
export const systemClock: Clock = { now: () => Date.now() };
