/**
 * Exit and signal handling (docs/multiprocess.md, "Exit and signals"): at process exit every open
 * store writes its final snapshot; on SIGTERM, SIGINT or SIGHUP with no other listener, the same,
 * then the signal is sent again so that the process dies of it as it would have.
 */
import { kPoliteSignalListener } from '../symbols'

/** What exit handling needs of a store. */
export interface Finalizable {
  /** Writes the final snapshot synchronously. */
  finalizeSync: () => void
}

const OPEN = new Set<Finalizable>()
const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
let handlersInstalled = false

function onProcessExit (): void {
  for (const store of [...OPEN]) store.finalizeSync()
}

/**
 * Listeners of a signal that, like ours, only clean up and let the signal end the process: ours
 * and those of other copies of this package (marked with a registered symbol), and
 * signal-exit's (v3 and v4; used by test runners and coverage tools), which defers to any other
 * listener the same way. Counting them avoids each waiting for the other.
 */
function politeListeners (signal: NodeJS.Signals): number {
  let ours = 0
  for (const l of process.listeners(signal)) if ((l as unknown as Record<symbol, unknown>)[kPoliteSignalListener] === true) ours++
  const g = globalThis as unknown as Record<symbol, { count?: unknown } | undefined>
  const v4 = g[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  return ours + (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
}

function onSignal (signal: NodeJS.Signals): void {
  // Another listener means the application handles the signal: it decides when to exit, and the
  // 'exit' event hands the totals over then. Alone, we hand them over now and let the signal do
  // what it would have done without us.
  if (process.listenerCount(signal) > politeListeners(signal)) return
  onProcessExit()
  uninstallHandlers()
  process.kill(process.pid, signal)
}
Object.defineProperty(onSignal, kPoliteSignalListener, { value: true })

function installHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', onProcessExit)
  for (const s of SIGNALS) process.on(s, onSignal)
}

function uninstallHandlers (): void {
  if (!handlersInstalled) return
  handlersInstalled = false
  process.removeListener('exit', onProcessExit)
  for (const s of SIGNALS) process.removeListener(s, onSignal)
}

/** Finalizes `store` at process exit (and on an unhandled signal) until `forgetAtExit`. */
export function finalizeAtExit (store: Finalizable): void {
  OPEN.add(store)
  installHandlers()
}

/** Stops finalizing `store` at exit; the last one removes the handlers. */
export function forgetAtExit (store: Finalizable): void {
  OPEN.delete(store)
  if (OPEN.size === 0) uninstallHandlers()
}
