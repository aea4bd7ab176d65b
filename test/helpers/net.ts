/** Test helpers for tests that start real servers: a free port, a plain GET, a sleep, waiting for a child's server. */
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import { createServer } from 'node:net'

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** GET a URL without keep-alive (with `headers`, if any); resolves with the status and the body. */
export function get (url: string, timeoutMs = 5000, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
  })
}

/** Resolves after `ms` milliseconds. */
export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when `url` answers a GET; rejects when `child` exits first or after `timeoutMs` (with `output()` in the message). */
export async function waitFor (url: string, child: ChildProcess, output: () => string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${output()}`)
    try {
      await get(url, 1000)
      return
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer: ${String(err)} ${output()}`)
      await sleep(100)
    }
  }
}
