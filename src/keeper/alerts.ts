import { abortableWait } from '../core/wait.js';
import { createHmac, randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { FetchLike } from '../oauth/endpoint.js';
import type { Secret } from '../core/secret.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { callDeadline } from '../core/deadline.js';
import type { KeeperLog } from './log.js';
import type { KeeperMetrics } from './metrics.js';
import { isHealthy } from '../core/health.js';
import type { StateChange } from './state.js';

/**
 * The keeper's "notify" stage. Every status change of a source (and every recovery) becomes
 * exactly one alert: a JSON log line at once, a signed webhook delivery, and the state in the
 * next Uptime Kuma push. Deliveries run in the background: a webhook that hangs or answers 500
 * is retried with backoff a bounded number of times and never holds up a cycle.
 */

export interface WebhookSettings {
  url: string;
  /** HMAC-SHA256 key: each delivery carries `X-Latchkey-Signature: sha256=<hex of HMAC(body)>`. */
  secret?: Secret;
}

/** Where the keeper sends a notification when a source changes status (webhooks, Uptime Kuma push). */
export interface AlertSettings {
  webhook?: WebhookSettings;
  /** Uptime Kuma push URL (it embeds the monitor's token, hence a Secret). */
  uptimeKumaPushUrl?: Secret;
  /** Attempts per webhook delivery (default 5). */
  attempts?: number;
  /** First retry delay; doubles each time, with jitter (default 1000 ms). */
  retryBaseMs?: number;
  /** Per-attempt timeout (default 10 s). */
  timeoutMs?: number;
  /** Deliveries in flight at once (default 4). */
  concurrency?: number;
  /** Deliveries waiting beyond this are dropped, with a log line (default 1000). */
  maxQueued?: number;
}

/** The JSON body of a webhook delivery. */
export interface AlertPayload {
  type: 'latchkey.source.state_changed';
  /** Unique per alert; repeated unchanged on retries, so a receiver can de-duplicate. */
  id: string;
  time: string;
  source: string;
  from: string | null;
  to: string;
  recovered: boolean;
  authPath: string | null;
  operatorAction: string | null;
  fix: string | null;
  message: string;
}

export interface AlertStageState {
  pending: number;
  inFlight: number;
  delivered: number;
  failed: number;
  dropped: number;
  lastError: string | null;
  lastErrorAt: string | null;
}

interface Job {
  payload: AlertPayload;
  body: string;
}

/** `sha256=<hex>`: the signature header value for a body. */
export function signBody(body: string, secret: Secret): string {
  return `sha256=${createHmac('sha256', secret.reveal()).update(body, 'utf8').digest('hex')}`;
}

export function alertPayload(change: StateChange, id: string = randomUUID()): AlertPayload {
  return {
    type: 'latchkey.source.state_changed',
    id,
    time: change.at,
    source: change.source,
    from: change.from,
    to: change.to,
    // Back to a working credential (`ok`, or `expiring`: it works, renewal is due) from a failure.
    recovered: isHealthy(change.to) && change.from !== null && !isHealthy(change.from),
    authPath: change.authPath,
    operatorAction: change.operatorAction,
    fix: change.fix,
    message: change.message,
  };
}

/** Uptime Kuma's view: down while anything needs a person or cannot be reached. */
export function kumaStatus(statuses: Iterable<string>): 'up' | 'down' {
  for (const s of statuses) if (s === 'action_required' || s === 'unreachable') return 'down';
  return 'up';
}

export class AlertDispatcher {
  readonly #settings: AlertSettings;
  readonly #fetch: FetchLike;
  readonly #log: KeeperLog;
  readonly #metrics: KeeperMetrics | undefined;
  readonly #clock: Clock;
  readonly #queue: Job[] = [];
  readonly #running = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #kumaInFlight: Promise<void> | undefined;
  readonly state: AlertStageState = { pending: 0, inFlight: 0, delivered: 0, failed: 0, dropped: 0, lastError: null, lastErrorAt: null };

  constructor(options: { settings: AlertSettings; fetch: FetchLike; log: KeeperLog; clock: Clock; metrics?: KeeperMetrics }) {
    this.#settings = options.settings;
    this.#fetch = options.fetch;
    this.#log = options.log;
    this.#clock = options.clock;
    this.#metrics = options.metrics;
  }

  /** Logs each change at once and queues its webhook delivery. Never waits for the network. */
  notify(changes: readonly StateChange[]): void {
    for (const c of changes) {
      const level = c.to === 'action_required' ? 'error' : c.to === 'ok' || c.to === 'expiring' ? 'info' : 'warn';
      this.#log(level, 'state_change', { source: c.source, from: c.from, to: c.to, action: c.operatorAction, fix: c.fix, message: c.message });
      if (!this.#settings.webhook) continue;
      const payload = alertPayload(c);
      if (this.#queue.length >= (this.#settings.maxQueued ?? 1000)) {
        this.state.dropped += 1;
        this.#metrics?.recordAlert('webhook', 'dropped');
        this.#log('error', 'alert_dropped', { source: c.source, to: c.to, message: 'webhook queue full (the webhook has been failing); alert dropped' });
        continue;
      }
      this.#queue.push({ payload, body: JSON.stringify(payload) });
    }
    this.state.pending = this.#queue.length;
    this.#pump();
  }

  /**
   * One Uptime Kuma push per cycle (a push monitor expects a heartbeat, and flips to down when
   * pushes stop): `status=up|down` for the whole keeper, `msg` naming what changed or what is
   * broken. A push still in flight is not stacked: the next cycle pushes again.
   */
  pushUptimeKuma(status: 'up' | 'down', msg: string): void {
    const url = this.#settings.uptimeKumaPushUrl;
    if (!url || this.#kumaInFlight) return;
    const p = this.#pushKuma(url, status, msg).finally(() => {
      this.#kumaInFlight = undefined;
      this.#running.delete(p);
    });
    this.#kumaInFlight = p;
    this.#running.add(p);
  }

  async #pushKuma(pushUrl: Secret, status: 'up' | 'down', msg: string): Promise<void> {
    let u: URL;
    try {
      u = new URL(pushUrl.reveal());
    } catch {
      this.#fail('uptime_kuma', 'the Uptime Kuma push URL is not a valid URL');
      return;
    }
    u.searchParams.set('status', status);
    u.searchParams.set('msg', sanitizeRemoteText(msg, 250));
    u.searchParams.set('ping', '');
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        const res = await this.#send(u, { method: 'GET', redirect: 'error' });
        if (res.ok) {
          this.#metrics?.recordAlert('uptime_kuma', 'delivered');
          return;
        }
        if (res.status < 500) {
          this.#fail('uptime_kuma', `Uptime Kuma answered HTTP ${res.status} (check the push URL)`);
          return;
        }
        this.#lastError(`Uptime Kuma answered HTTP ${res.status}`);
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        this.#lastError(`Uptime Kuma push failed: ${describe(err)}`);
      }
      if (attempt < 2) await this.#sleep(this.#settings.retryBaseMs ?? 1000);
    }
    this.#fail('uptime_kuma', `Uptime Kuma push failed: ${this.state.lastError ?? 'no answer'}`);
  }

  #pump(): void {
    const limit = this.#settings.concurrency ?? 4;
    while (this.state.inFlight < limit && this.#queue.length > 0 && !this.#abort.signal.aborted) {
      const job = this.#queue.shift() as Job;
      this.state.pending = this.#queue.length;
      this.state.inFlight += 1;
      const p: Promise<void> = this.#deliver(job).finally(() => {
        this.state.inFlight -= 1;
        this.#running.delete(p);
        this.#pump();
      });
      this.#running.add(p);
    }
  }

  async #deliver(job: Job): Promise<void> {
    const hook = this.#settings.webhook as WebhookSettings;
    const attempts = this.#settings.attempts ?? 5;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'latchkey-keeper',
      'x-latchkey-event': 'source.state_changed',
      'x-latchkey-delivery': job.payload.id,
    };
    if (hook.secret) headers['x-latchkey-signature'] = signBody(job.body, hook.secret);
    let why = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (this.#abort.signal.aborted) return;
      try {
        const res = await this.#send(hook.url, { method: 'POST', headers, body: job.body, redirect: 'error' });
        if (res.ok) {
          this.state.delivered += 1;
          this.#metrics?.recordAlert('webhook', 'delivered');
          return;
        }
        why = `HTTP ${res.status}`;
        // 4xx other than 408/429 will not get better by retrying: the receiver refuses it.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        why = describe(err);
      }
      this.#lastError(`webhook delivery for ${job.payload.source} failed: ${why}`);
      if (attempt < attempts) {
        this.#metrics?.recordAlert('webhook', 'retried');
        const base = (this.#settings.retryBaseMs ?? 1000) * 2 ** (attempt - 1);
        await this.#sleep(base * (0.5 + Math.random() * 0.5));
      }
    }
    this.state.failed += 1;
    this.#fail('webhook', `webhook delivery for ${job.payload.source} (${job.payload.from ?? 'new'} → ${job.payload.to}) gave up after ${attempts} attempt(s): ${why}`, job.payload.source);
  }

  /**
   * One attempt, bounded by the per-attempt timeout and by shutdown; the answer's body is
   * discarded. The dispatcher's signal lives as long as the keeper, so each attempt links to it
   * and lets go afterwards (see deadline.ts) instead of going through AbortSignal.any.
   */
  async #send(url: string | URL, init: RequestInit): Promise<{ ok: boolean; status: number }> {
    const deadline = callDeadline(this.#abort.signal, this.#settings.timeoutMs ?? 10_000);
    try {
      const res = await this.#fetch(url, { ...init, signal: deadline.signal });
      await res.body?.cancel().catch(() => undefined);
      return { ok: res.ok, status: res.status };
    } finally {
      deadline.dispose();
    }
  }

  #lastError(message: string): void {
    // Served on /readyz: a receiver's error may quote what it was sent or what it answered.
    this.state.lastError = sanitizeRemoteText(message, 500);
    this.state.lastErrorAt = new Date(this.#clock.now()).toISOString();
  }

  #fail(channel: 'webhook' | 'uptime_kuma', message: string, source?: string): void {
    this.#lastError(message);
    this.#metrics?.recordAlert(channel, 'failed');
    // The webhook URL (and the Kuma URL's token) never go into the log: only what failed.
    this.#log('warn', 'alert_failed', { channel, source, message });
  }

  #sleep(ms: number): Promise<void> {
    return abortableWait(ms, this.#abort.signal, { unref: true });
  }

  /** Waits for queued deliveries up to `graceMs`, then abandons the rest (shutdown). */
  async close(graceMs = 3000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while ((this.#running.size > 0 || this.#queue.length > 0) && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.#running]), new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())))]);
    }
    const abandoned = this.#queue.length + this.state.inFlight;
    this.#abort.abort();
    this.#queue.length = 0;
    this.state.pending = 0;
    if (abandoned > 0) this.#log('warn', 'alerts_abandoned', { count: abandoned, message: `${abandoned} webhook delivery(ies) still pending at shutdown were abandoned` });
    await Promise.allSettled([...this.#running]);
  }

  /** Resolves when nothing is queued or in flight (tests). */
  async idle(): Promise<void> {
    while (this.#running.size > 0 || this.#queue.length > 0) await Promise.allSettled([...this.#running]);
  }
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'no answer before the timeout';
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e.message} (${cause})` : (e?.message ?? String(err));
}
