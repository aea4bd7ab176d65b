/** Test helper: a child process (a server under test, Prometheus) with its output kept and a stop that always ends it. */
import type { ChildProcess } from 'node:child_process'

/** A child process with its output kept, its exit awaited, and a stop that always ends it. */
export class Proc {
  output = ''
  exited = false
  readonly done: Promise<void>
  constructor (readonly name: string, readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (c: string) => { this.output += c })
    child.stderr?.setEncoding('utf8').on('data', (c: string) => { this.output += c })
    this.done = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exited = true
      this.output += `\n(${name} exited: code ${String(code)}, signal ${String(signal)})\n`
      resolve()
    }))
  }

  /** SIGTERM to its process group, SIGKILL after `graceMs`. */
  async stop (graceMs: number): Promise<void> {
    if (this.exited || this.child.pid === undefined) return
    const signal = (s: NodeJS.Signals): void => {
      try { process.kill(-(this.child.pid as number), s) } catch { /* already gone */ }
    }
    signal('SIGTERM')
    const timer = setTimeout(() => signal('SIGKILL'), graceMs)
    await this.done
    clearTimeout(timer)
  }
}
