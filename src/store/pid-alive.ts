/**
 * Whether a process with this pid runs on this host. Signal 0 checks without signalling; EPERM
 * means it runs under another user (alive). Only meaningful for pids recorded on this host.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
