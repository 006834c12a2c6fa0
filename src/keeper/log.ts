import type { Clock } from '../core/clock.js';
import { sanitizeMessage } from '../core/sanitize.js';

/**
 * The keeper's log: one JSON object per line on stderr (journald, launchd's log file and `jq`
 * all take it as is). Every line has `time` and `event`; values are plain data — callers pass
 * messages and names, never a credential (Secret values print as `[redacted]` anyway); a
 * message that quotes upstream text (an error's) is sanitized here, the last stop before stderr.
 */
export type LogLevel = 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | null | undefined | string[]>;

/** The keeper's structured log sink: called with a level, an event name and its fields. */
export interface KeeperLog {
  (level: LogLevel, event: string, fields?: LogFields): void;
}

export function jsonLineLog(out: { write(chunk: string): unknown }, clock: Clock): KeeperLog {
  return (level, event, fields = {}) => {
    const line: Record<string, unknown> = { time: new Date(clock.now()).toISOString(), level, event };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = typeof v === 'string' && (k === 'message' || k === 'fix') ? sanitizeMessage(v) : v;
    try {
      out.write(`${JSON.stringify(line)}\n`);
    } catch {
      // A closed stderr must not take the keeper down.
    }
  };
}

/** A log that drops everything (library use without a log). */
export const silentLog: KeeperLog = () => undefined;
