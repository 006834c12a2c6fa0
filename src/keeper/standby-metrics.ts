import { Gauge, Registry } from 'prom-client';

/**
 * What a standby keeper's `GET /metrics` says (fleet mode): that it stands by, and how old the
 * leader's published state is. Never the per-source series: a standby does not probe, and the
 * leader exports them, so an alert on a source fires once per fleet, not once per keeper. From
 * the moment it takes the lead the keeper serves its own metrics (src/keeper/metrics.ts).
 */
export class StandbyMetrics {
  readonly registry = new Registry();
  #publishedAt: number | undefined;
  #epoch: number | undefined;

  constructor(now: () => number = Date.now) {
    const registers = [this.registry];
    new Gauge({ name: 'latchkey_keeper_standby', help: '1 while this keeper stands by for the leader of its store', registers }).set(1);
    optionalGauge(registers, 'latchkey_keeper_published_state_age_seconds', "Age of the state the leader last published (absent until one is read); it grows when the leader stops publishing", () =>
      this.#publishedAt === undefined ? undefined : Math.max(0, (now() - this.#publishedAt) / 1000),
    );
    optionalGauge(registers, 'latchkey_keeper_leader_epoch', 'Epoch of the leader whose state this standby serves (absent until one is read)', () => this.#epoch);
  }

  /** The published state just read: when the leader published it and under which epoch. */
  observe(publishedAt: number | undefined, epoch: number | undefined): void {
    this.#publishedAt = publishedAt;
    this.#epoch = epoch;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A gauge whose value is read at each scrape; absent while `value` says undefined. */
function optionalGauge(registers: Registry[], name: string, help: string, value: () => number | undefined): void {
  const gauge = new Gauge({
    name,
    help,
    registers,
    collect: () => {
      const v = value();
      if (v === undefined) gauge.reset();
      else gauge.set(v);
    },
  });
}
