/**
 * Who a process is (docs/multiprocess.md, "Process identity"): its node id, pid and start time,
 * and whether a process of this node still runs. Reads `/proc` (Linux); elsewhere a process is
 * known by its pid alone.
 */
import { createHash } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'

/** A short text of a `/proc` file, or `''` where there is none. */
function procText (read: () => string): string {
  try { return read().trim() } catch { return '' }
}

let hostHash: string | undefined
/**
 * This process's node id: 8 hex digits of a hash of the host name, the boot id
 * (`/proc/sys/kernel/random/boot_id`) and the pid namespace (`/proc/self/ns/pid`). Two processes
 * with the same node id see the same process table, so one can ask whether the other runs
 * (`kill(pid, 0)` and `/proc/<pid>/stat`); processes of other nodes (another container with its
 * own pid namespace, another boot, another host) are judged by their heartbeat only.
 */
export function hostId (): string {
  hostHash ??= createHash('sha1')
    .update(`${hostname()}\u0000${procText(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1'))}\u0000${procText(() => readlinkSync('/proc/self/ns/pid'))}`)
    .digest('hex').slice(0, 8)
  return hostHash
}

/** The process's start time in clock ticks since boot (Linux), or `'0'` when unknown. */
export function processStart (pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = fields[19]
    return start !== undefined && /^\d+$/.test(start) ? start : '0'
  } catch {
    return '0'
  }
}

let ownStartValue: string | undefined
/** This process's start time (`processStart(process.pid)`, read once). */
export function ownStart (): string {
  ownStartValue ??= processStart(process.pid)
  return ownStartValue
}

/** Whether the process `pid` that started at `pstart` still runs (on this node). */
export function processAlive (pid: number, pstart: string): boolean {
  if (pid === process.pid) return pstart === '0' || pstart === ownStart()
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (pstart === '0') return true
  const now = processStart(pid)
  return now === '0' || now === pstart
}
