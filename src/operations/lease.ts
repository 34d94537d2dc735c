/** Identity of the GC lease holder, and whether a holder is a process that died (crash recovery). */
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Which process holds the lease: host, PID namespace and pid (Linux). A restart after kill -9
 * takes over a lease whose holder is provably dead on this machine instead of waiting LEASE_MS
 * for it to expire, so the interrupted deletion resumes at once.
 */
export const PROCESS_ID = `${hostname()}|${pidNamespace()}|${process.pid}`;

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return ''; // not Linux: never judged dead, the lease expires instead
  }
}

/** Whether the holder ran in this host's PID namespace and that process no longer exists. */
export function holderIsDead(holder: string): boolean {
  const [host, ns, pid] = holder.split('/')[0]!.split('|');
  if (!ns || host !== hostname() || ns !== pidNamespace() || !/^[0-9]+$/.test(pid ?? '')) return false;
  if (Number(pid) === process.pid) return false; // another collector of this process: it is alive
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
