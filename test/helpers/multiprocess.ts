/** Helpers of the multiprocess tests: real child processes, HTTP scrapes, exact load. */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { samples } from './scrape'

// autocannon ships no types.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<{ '2xx': number, non2xx: number, errors: number, timeouts: number }>

export const FIXTURES = join(__dirname, '..', 'fixtures', 'multiprocess')

/** A fresh directory, removed at teardown (retried while a process still writes its last snapshot). */
export function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fnm-mp-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true, maxRetries: 50, retryDelay: 200 }))
  return dir
}

/** The multiprocess files in a directory (process files, archive, anything else), sorted. */
export function dirFiles (dir: string): string[] {
  return readdirSync(dir).sort()
}

/** Process files (one per live store, until merged). */
export function processFiles (dir: string): string[] {
  return dirFiles(dir).filter((n) => /^fnm-[0-9a-f]{8}-\d+-\d+-[0-9a-f]{12}\.json$/.test(n))
}

export interface Started { child: ChildProcess, pid: number, port: number, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }> }

/** Forks a fixture and waits for its `{ ready }` message. */
export async function startFixture (file: string, env: Record<string, string>): Promise<Started> {
  const child = fork(join(FIXTURES, file), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const ready = await new Promise<{ pid: number, port: number }>((resolve, reject) => {
    child.once('message', (m: { ready?: boolean, pid: number, port: number }) => { if (m.ready === true) resolve(m) })
    void exited.then(({ code, signal }) => reject(new Error(`${file} exited before ready: ${code} ${signal}`)))
  })
  return { child, pid: ready.pid, port: ready.port, exited }
}

let rpcId = 0
/**
 * Sends `cmd` to a fixture over IPC and resolves with its answer, the message carrying the same
 * `id`; rejects when the message cannot be sent or the answer carries an `error`.
 */
export async function rpc (p: Started, cmd: Record<string, unknown>): Promise<Record<string, any>> {
  const id = ++rpcId
  return await new Promise((resolve, reject) => {
    const onMessage = (m: { id?: number, error?: unknown }): void => {
      if (m.id !== id) return
      p.child.off('message', onMessage)
      if (typeof m.error === 'string') reject(new Error(m.error))
      else resolve(m as Record<string, any>)
    }
    p.child.on('message', onMessage)
    p.child.send({ ...cmd, id }, (err) => { if (err !== null) reject(err) })
  })
}

/** One GET on a new connection (so node:cluster hands it to the next worker). */
export async function get (port: number, path: string): Promise<{ status: number, body: string, pid: number }> {
  return await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, pid: Number(res.headers['x-worker-pid']) }))
    })
    req.on('error', reject)
  })
}

/** Exactly `amount` requests with autocannon; rejects unless every one answered 2xx. */
export async function load (port: number, path: string, amount: number, connections = 8): Promise<void> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}${path}`, amount, connections })
  if (r['2xx'] !== amount || r.errors !== 0 || r.non2xx !== 0 || r.timeouts !== 0) {
    throw new Error(`load: asked ${amount}, got 2xx ${r['2xx']}, non2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts}`)
  }
}

/** Sum of `http_requests_total` of one route. */
export function requestsTotal (body: string, route: string): number {
  let total = 0
  for (const [series, v] of samples(body)) {
    if (series.startsWith('http_requests_total{') && series.includes(`route="${route}"`)) total += v
  }
  return total
}

/** Every sample of our counters and histograms (no per-pid series), for monotonicity checks. */
export function monotonicSamples (body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const [series, v] of samples(body)) {
    if (series.includes('pid="')) continue
    const name = series.split('{')[0]
    if (/_(total|bucket|count|sum)$/.test(name)) out.set(series, v)
  }
  return out
}

/** The series of `before` that went down in `after` (a counter must never). */
export function decreases (before: Map<string, number>, after: Map<string, number>): string[] {
  const out: string[] = []
  for (const [series, v] of before) {
    const w = after.get(series)
    if (w === undefined || w < v) out.push(`${series}: ${v} -> ${w ?? 'absent'}`)
  }
  return out
}

/** Sample lines that appear more than once (Prometheus keeps one and reports the rest as duplicates). */
export function duplicateSeries (body: string): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const series = line.slice(0, line.lastIndexOf(' '))
    if (seen.has(series)) out.push(series)
    seen.add(series)
  }
  return out
}

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
