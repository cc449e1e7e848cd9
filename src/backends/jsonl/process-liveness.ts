/**
 * Whether the process that left a lock or temp file behind is still running. A pid alone is not
 * enough in containers, where pid 1 is reused on every restart, so where /proc exists the process
 * start time (field 22 of /proc/<pid>/stat) is recorded and compared too.
 */

import { readFileSync } from 'node:fs';

/** The start time of `pid` in clock ticks since boot, or '' where /proc is not available. */
export function processStartTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm (field 2) may contain spaces and parentheses: count fields after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? '';
  } catch {
    return '';
  }
}

/** This process as `<pid> <start time>`, the identity written into lock files. */
export const SELF_IDENTITY = `${process.pid} ${processStartTime(process.pid)}`;

/** True unless the process named by an identity (`<pid> <start time>`) has certainly exited. */
export function isIdentityAlive(identity: string): boolean {
  const [pidText, start = ''] = identity.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (!isPidAlive(pid)) return false;
  if (start === '') return true;
  const now = processStartTime(pid);
  return now === '' || now === start;
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
