/**
 * The one abortable wait: resolves after `ms`, or as soon as `signal` aborts. It never rejects;
 * a caller that must tell the two apart checks `signal.aborted` afterwards. Used where a loop
 * sleeps between attempts and must stop at once on shutdown or Ctrl-C (device-flow polling,
 * webhook retries, `latchkey health --watch`, a wait for a lock file).
 */
export function abortableWait(ms: number, signal?: AbortSignal, options: { unref?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      signal?.removeEventListener('abort', done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    // A wait that must not keep the process alive on its own (a retry after shutdown began).
    if (options.unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * `work`'s outcome, or a rejection with the signal's reason as soon as `signal` aborts (after
 * `onAbort`, if given); the work itself is not waited for then, and its later failure is not
 * left unhandled.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal, onAbort?: () => void): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    onAbort?.();
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const aborted = (): void => {
      onAbort?.();
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', aborted, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', aborted);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', aborted);
        reject(e as Error);
      },
    );
  });
}
