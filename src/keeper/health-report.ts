import { readFile, stat } from 'node:fs/promises';
import { isReportFresh, readReportEnvelope, reportEntryProblem } from '../core/health.js';
import { LatchkeyError } from '../core/errors.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import { sanitizeMessage } from '../core/sanitize.js';
import { bytesOfPieces } from './json-bytes.js';
import { HISTORY_LIMIT, samplesUntil, timelineEnd, type KeeperActivity, type ProbeSample, type SourceKeeperState, type Timeline, type Verdict } from './state.js';

/**
 * The keeper's "report" stage: `health.json`, written atomically once per cycle and served as
 * is at `/api/health`. Its field names are a contract: `lk.preflight` reads this file for its
 * cached answer, and the dashboard renders it.
 */

/** One source in the report: its last verdict (without the check's time), how it has been, and its refresh schedule. */
export interface HealthReportSource extends Omit<Verdict, 'at'> {
  lastOkAt: string | null;
  consecutiveFailures: number;
  /** The most recent probes (the full 24 h are at `GET /api/history`). */
  history: ProbeSample[];
  /** When the current access token was obtained (OAuth; the start of the dashboard's countdown bar). */
  issuedAt?: string | null;
  /** When the keeper refreshes it next (OAuth: ⅔ of its lifetime, or the daily refresh). */
  refreshAt?: string | null;
  lastRefreshAt?: string | null;
  lastRefreshOutcome?: string | null;
}

/** What the keeper says about itself in the report (absent from a `latchkey health --live` one). */
export interface KeeperReportInfo {
  /** When the next probe cycle starts. */
  nextCycleAt: string | null;
  /** The config the keeper runs on; `error` says why the last reload was refused (it kept the previous one). */
  config: { file: string; loadedAt: string | null; error: string | null };
  activity: KeeperActivity;
  /** Fleet mode (a shared store): whether this keeper leads it or stands by, and who leads. */
  fleet?: KeeperFleetInfo;
}

/** A keeper's part in a fleet sharing one store (README "Fleet mode"). */
export interface KeeperFleetInfo {
  /** `leader`: this keeper refreshes and probes; `standby`: it serves the leader's published state. */
  role: 'leader' | 'standby';
  /** The store (its location, never a password). */
  store: string;
  /** The leader's epoch (its leadership's number) and who it is, as the store says. */
  leader: { epoch: number; pid: number; host: string; heartbeatAt: string | null } | null;
  /** When the state served was published (a standby), or null. */
  publishedAt: string | null;
}

/** `health.json` and `GET /api/health`. */
export interface HealthReport {
  generatedAt: string;
  intervalSeconds: number;
  sources: Record<string, HealthReportSource>;
  keeper?: KeeperReportInfo;
}

/** What the keeper knows per source beyond its state (from the store and its refresh timer). */
export interface RefreshSchedule {
  issuedAt: number | undefined;
  refreshAt: number | undefined;
  expiresAt?: number | undefined;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** Where a report entry's `history` is read from: keys that are not enumerable (not in its JSON, keys or spreads). */
const TIMELINE = Symbol('timeline');
const UNTIL = Symbol('until');
type HistoryBacked = HealthReportSource & { [TIMELINE]: Timeline; [UNTIL]: number };

function historyOf(this: HistoryBacked): ProbeSample[] {
  return samplesUntil(this[TIMELINE], this[UNTIL], HISTORY_LIMIT);
}

/**
 * `history` is built when read (serialized, or looked at), never kept: 30 samples × 10,000
 * sources held between cycles were ~25 MB of the keeper's heap (bench/keeper-scale, issue 9). It
 * is an own, enumerable accessor, so the entry serializes and spreads like a plain object, and
 * every entry shares this one getter: a getter of its own per entry (a closure) turns the entry
 * into a dictionary-mode object, ~1 KB instead of ~0.15 KB, ~10 MB at 10,000 sources (twice
 * while a cycle's report replaces the last).
 */
const HISTORY: PropertyDescriptor = { get: historyOf, enumerable: true, configurable: true };

/**
 * The report for the sources the keeper knows. A source not checked yet is reported as
 * `unreachable` with a message saying so (never as healthy: nobody has seen it work).
 */
export function buildHealthReport(
  sources: Iterable<[string, SourceKeeperState]>,
  generatedAt: number,
  intervalSeconds: number,
  extra: { schedule?: (name: string) => RefreshSchedule | undefined; keeper?: KeeperReportInfo } = {},
): HealthReport {
  const out: Record<string, HealthReportSource> = {};
  for (const [name, s] of sources) {
    const sched = extra.schedule?.(name);
    const entry = {
      status: s.status ?? 'unreachable',
      authPath: s.authPath,
      operatorAction: s.operatorAction,
      fix: s.fix,
      message: s.status === null ? 'not checked yet' : s.message,
      expiresAt: s.expiresAt,
      lastOkAt: s.lastOkAt,
      consecutiveFailures: s.consecutiveFailures,
      latencyMs: s.latencyMs,
    } as HistoryBacked;
    // As of this report: probes the timeline records later are not in it.
    Object.defineProperty(entry, 'history', HISTORY);
    Object.defineProperty(entry, TIMELINE, { value: s.timeline });
    Object.defineProperty(entry, UNTIL, { value: timelineEnd(s.timeline) });
    if (sched) {
      entry.issuedAt = iso(sched.issuedAt);
      entry.refreshAt = iso(sched.refreshAt);
      entry.lastRefreshAt = s.lastRefreshAt;
      entry.lastRefreshOutcome = s.lastRefreshOutcome;
    }
    out[name] = entry;
  }
  const report: HealthReport = { generatedAt: new Date(generatedAt).toISOString(), intervalSeconds, sources: out };
  if (extra.keeper) report.keeper = extra.keeper;
  return report;
}

/** What happened to the file since the keeper last wrote it (checked before each write). */
export type ReportFileCheck = 'first' | 'unchanged' | 'deleted' | 'corrupted' | 'replaced';

interface Written {
  ino: number;
  size: number;
  mtimeMs: number;
}

/**
 * Writes `health.json` and notices when someone else touched it in between (deleted, replaced,
 * corrupted by hand), so the keeper can say so in its log while it puts it right.
 */
export class HealthReportWriter {
  readonly path: string;
  #last: Written | undefined;
  #writes = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** How many times the file was written by this writer. */
  get writes(): number {
    return this.#writes;
  }

  /** Compares the file on disk with what was last written; cheap (one stat) when untouched. */
  async check(): Promise<ReportFileCheck> {
    const last = this.#last;
    if (!last) return 'first';
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'deleted';
      throw err;
    }
    if (st.ino === last.ino && st.size === last.size && st.mtimeMs === last.mtimeMs) return 'unchanged';
    const text = await readFile(this.path, 'utf8').catch(() => '');
    try {
      parseHealthReport(JSON.parse(text) as unknown, this.path);
      return 'replaced';
    } catch {
      return 'corrupted';
    }
  }

  /** Size in bytes of the file last written (0 before the first write). */
  get lastSize(): number {
    return this.#last?.size ?? 0;
  }

  /** Writes the serialized report (whole, or in pieces) atomically and remembers what it wrote. */
  async write(bytes: string | Buffer | Iterable<string>): Promise<void> {
    await writeFileAtomic(this.path, bytes);
    this.#writes += 1;
    const st = await stat(this.path);
    this.#last = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  }
}

/**
 * The bytes of `health.json` (one line of JSON, as `JSON.stringify(report)` + newline): what is
 * written and what `/api/health` sends. Built source by source into one buffer (`sizeHint`: the
 * previous report's size), never as one string of the whole report.
 */
export function serializeHealthReport(report: HealthReport, sizeHint = 0): Buffer {
  return bytesOfPieces(healthReportText(report), sizeHint);
}

/** Pieces handed to a file write are about this long. */
const FILE_PIECE_CHARS = 64 * 1024;

/** The report's JSON (as {@link serializeHealthReport}) in pieces of ~64 K characters, for a file write. */
export function* healthReportPieces(report: HealthReport): Generator<string> {
  let piece = '';
  for (const text of healthReportText(report)) {
    piece += text;
    if (piece.length >= FILE_PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  if (piece !== '') yield piece;
}

/** The report's JSON in pieces: one per source, in the key order `JSON.stringify` gives. */
function* healthReportText(report: HealthReport): Generator<string> {
  yield `{"generatedAt":${JSON.stringify(report.generatedAt)},"intervalSeconds":${JSON.stringify(report.intervalSeconds)},"sources":{`;
  let first = true;
  for (const [name, s] of Object.entries(report.sources)) {
    yield `${first ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(s)}`;
    first = false;
  }
  yield report.keeper === undefined ? '}}\n' : `},"keeper":${JSON.stringify(report.keeper)}}\n`;
}

/** Validates a parsed `health.json` (the envelope and entry rules of src/core/health.ts); throws LK_KEEPER naming the file and the field. */
export function parseHealthReport(v: unknown, file: string): HealthReport {
  const bad = (what: string): never => {
    throw new LatchkeyError('LK_KEEPER', `${file}: ${what} (not a keeper health report; the keeper rewrites it on its next cycle)`);
  };
  const envelope = readReportEnvelope(v);
  if ('problem' in envelope) return bad(envelope.problem);
  for (const [name, s] of Object.entries(envelope.sources)) {
    const problem = reportEntryProblem(name, s);
    if (problem) bad(problem);
  }
  const written = (v as { generatedAt: unknown }).generatedAt;
  return {
    generatedAt: typeof written === 'string' ? written : new Date(envelope.generatedAt).toISOString(),
    intervalSeconds: envelope.intervalSeconds,
    sources: envelope.sources as Record<string, HealthReportSource>,
  };
}

/** Reads `health.json`; `undefined` when there is none. A corrupt file is an error naming it. */
export async function readHealthReport(path: string): Promise<HealthReport | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LatchkeyError('LK_KEEPER', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LatchkeyError('LK_KEEPER', `${path} is not valid JSON (the keeper rewrites it on its next cycle)`);
  }
  const report = parseHealthReport(parsed, path);
  // Written by the keeper (sanitized then) but a file anyone may have edited: its text is read
  // as text from elsewhere before `latchkey health` prints it.
  for (const s of Object.values(report.sources)) {
    if (typeof s.message === 'string') s.message = sanitizeMessage(s.message);
    if (typeof s.fix === 'string') s.fix = sanitizeMessage(s.fix);
  }
  return report;
}

export function reportAgeMs(report: HealthReport, now: number): number {
  return now - Date.parse(report.generatedAt);
}

/** A report is stale when pre-flight would no longer trust it: the one rule of src/core/health.ts (`isReportFresh`). */
export function isReportStale(report: HealthReport, now: number): boolean {
  return !isReportFresh(Date.parse(report.generatedAt), report.intervalSeconds, now);
}

/** CLI exit code for a set of statuses (src/core/health.ts). */
export { exitCodeForStatuses as exitCodeFor } from '../core/health.js';
