/** Test helper: Prometheus's HTTP query API, for the end-to-end tests that start a real Prometheus. */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, get, sleep } from './net'
import { Proc } from './proc'

/**
 * Starts Prometheus on a free loopback port with `config` as prometheus.yml and its data in
 * `dir`, in its own process group (stop it with `proc.stop()`); `flags` are added to its
 * command line.
 */
export async function startPrometheus (bin: string, dir: string, config: string, flags: string[] = []): Promise<{ proc: Proc, api: string }> {
  const port = await freePort()
  writeFileSync(join(dir, 'prometheus.yml'), config)
  const proc = new Proc('prometheus', spawn(bin, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    ...flags,
    '--storage.tsdb.retention.time=1h',
    '--log.level=warn'
  ], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }))
  return { proc, api: `http://127.0.0.1:${port}` }
}

/** One sample of an instant query's result. */
export interface Sample { metric: Record<string, string>, value: [number, string] }

/** The instant-query API of the Prometheus at `api`; `stopped()` ends a wait early. */
export function prometheusApi (api: string, stopped: () => boolean): {
  query: (expr: string, time?: number) => Promise<Sample[]>
  waitFor: (expr: string, ok: (r: Sample[]) => boolean, ms?: number) => Promise<Sample[]>
  value: (r: Sample[]) => number
} {
  const query = async (expr: string, time?: number): Promise<Sample[]> => {
    const q = new URLSearchParams({ query: expr })
    if (time !== undefined) q.set('time', String(time))
    const r = await get(`${api}/api/v1/query?${q.toString()}`)
    const body = JSON.parse(r.body)
    if (r.status !== 200 || body.status !== 'success') throw new Error(`query ${expr}: ${r.status} ${r.body}`)
    return body.data.result as Sample[]
  }
  /** Polls `expr` until `ok` holds for its result (or `ms` pass); returns the last result. */
  const waitFor = async (expr: string, ok: (r: Sample[]) => boolean, ms = 30000): Promise<Sample[]> => {
    const until = Date.now() + ms
    let last: Sample[] = []
    for (;;) {
      try {
        last = await query(expr)
        if (ok(last)) return last
      } catch { /* not ready yet */ }
      if (Date.now() > until || stopped()) return last
      await sleep(250)
    }
  }
  /** The value of a one-sample result, NaN otherwise. */
  const value = (r: Sample[]): number => r.length === 1 ? Number(r[0].value[1]) : NaN
  return { query, waitFor, value }
}
