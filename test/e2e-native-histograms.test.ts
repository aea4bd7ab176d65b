/**
 * Native histograms and exemplars end to end with a real Prometheus (Debian's 2.42, started with
 * `--enable-feature=native-histograms,exemplar-storage`, which makes it ask for protobuf). Two apps
 * in this process get the same requests: one with `nativeHistograms` and `exemplars`, one with
 * classic buckets only (Prometheus 2.42 keeps only the native series of a family it sees as
 * native, so the classic comparison needs its own target). The test records every duration the
 * package observed for its route (a tap on HistogramSeries.observe that passes the value on) and
 * checks through Prometheus's HTTP API:
 * - histogram_count over the native histogram is the number of requests sent;
 * - histogram_quantile(0.99, ...) over it is within one bucket's relative width at schema 3
 *   (2^(1/8) - 1, about 9%) of the exact 0.99 quantile of the recorded durations, and closer to
 *   it than histogram_quantile over the classic buckets of the other app to its own durations;
 * - /api/v1/query_exemplars returns the trace ids sent in traceparent headers.
 * Skipped when Prometheus is not installed. Prometheus is stopped whatever happens.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import netboxMetrics from '../lib/index'
import { HistogramSeries } from '../lib/families'
import { get, sleep } from './helpers/net'
import { Proc } from './helpers/proc'
import { prometheusApi, startPrometheus } from './helpers/prometheus'

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus'
const skip = existsSync(PROMETHEUS) && spawnSync(PROMETHEUS, ['--version']).status === 0
  ? false
  : `${PROMETHEUS} is not installed (Debian: apt-get install prometheus); .ci/run installs it`

const ROUTE = '/work/:ms'
const REQUESTS = 240
const TRACED_LAST = 3
const traceId = (i: number): string => `${(0x10000000 + i).toString(16)}aaaabbbbccccddddeeeeffff`
const spanId = (i: number): string => `${(0x10000000 + i).toString(16)}99998888`

/** The q-quantile Prometheus's rank points at: the ceil(q * n)-th smallest value. */
function exactQuantile (values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]
}

t.test('a real Prometheus reads native histograms and exemplars over protobuf', { skip, timeout: 180000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'fnm-e2e-native-'))
  const procs: Proc[] = []
  const apps: FastifyInstance[] = []
  // What the package observed for the route, per app (the tap passes every value on unchanged).
  const recorded = new Map<HistogramSeries, number[]>()
  const observe = HistogramSeries.prototype.observe
  HistogramSeries.prototype.observe = function (this: HistogramSeries, v: number): void {
    if (this.labels.route === ROUTE && this.labels.status_code !== undefined) {
      let list = recorded.get(this)
      if (list === undefined) recorded.set(this, list = [])
      list.push(v)
    }
    observe.call(this, v)
  }
  t.teardown(async () => {
    HistogramSeries.prototype.observe = observe
    for (const p of procs) await p.stop(5000)
    for (const a of apps) await a.close()
    if (t.passing() === false) for (const p of procs) console.error(`--- ${p.name} output ---\n${p.output.slice(-4000)}`)
    rmSync(tmp, { recursive: true, force: true })
  })

  const start = async (options: object): Promise<number> => {
    const app = Fastify()
    apps.push(app)
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, ...options })
    app.get(ROUTE, async (request) => {
      await sleep(Number((request.params as { ms: string }).ms))
      return 'done'
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as import('node:net').AddressInfo).port
  }
  const nativePort = await start({ nativeHistograms: true, exemplars: true })
  const classicPort = await start({})

  const { proc: prom, api } = await startPrometheus(PROMETHEUS, tmp, [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: native',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${nativePort}']`,
    '  - job_name: classic',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${classicPort}']`,
    ''
  ].join('\n'), ['--enable-feature=native-histograms,exemplar-storage'])
  procs.push(prom)
  const { query, waitFor, value } = prometheusApi(api, () => prom.exited)
  const up = await waitFor('sum(up)', (r) => value(r) === 2)
  t.equal(value(up), 2, 'both targets are up')

  // Durations from 1 ms to 40 ms, log-uniform (a seeded sequence: the sleep for request i).
  const sleeps = Array.from({ length: REQUESTS }, (_, i) => Math.round(40 ** (((i * 0.6180339887) % 1))))
  for (let i = 0; i < REQUESTS; i += 8) {
    await Promise.all(sleeps.slice(i, i + 8).flatMap((ms) => [get(`http://127.0.0.1:${nativePort}/work/${ms}`), get(`http://127.0.0.1:${classicPort}/work/${ms}`)]))
  }
  // Then traced requests, one at a time, each given two scrapes. Prometheus 2.42 takes one
  // exemplar per series and scrape, the first bucket's that has one, and each bucket keeps its
  // latest; so each traced request is made much faster than the one before (300 ms, 60 ms,
  // 0 ms: a lower bucket each time, unless a request is delayed by 190 ms or more) and each must
  // come back.
  const traced: string[] = []
  for (let i = 0; i < TRACED_LAST; i++) {
    await get(`http://127.0.0.1:${nativePort}/work/${[300, 60, 0][i]}`, 5000, { traceparent: `00-${traceId(i)}-${spanId(i)}-01` })
    await get(`http://127.0.0.1:${classicPort}/work/${[300, 60, 0][i]}`)
    traced.push(traceId(i))
    await sleep(2200)
  }
  const total = REQUESTS + TRACED_LAST

  const nativeSelector = `http_request_duration_seconds{job="native", route="${ROUTE}"}`
  const count = await waitFor(`histogram_count(${nativeSelector})`, (r) => value(r) === total)
  t.equal(value(count), total, `histogram_count is the ${total} requests sent`)
  t.same(await query(`http_request_duration_seconds_bucket{job="native"}`), [], 'Prometheus 2.42 kept the native series only')

  const durationsOf = (app: FastifyInstance): number[] => {
    const family = app.metrics.registry.getSingleMetric('http_request_duration_seconds') as unknown as { entries: () => Iterable<HistogramSeries> }
    const out: number[] = []
    for (const s of family.entries()) out.push(...(recorded.get(s) ?? []))
    return out
  }
  const nativeDurations = durationsOf(apps[0])
  const classicDurations = durationsOf(apps[1])
  t.equal(nativeDurations.length, total, 'the test recorded every observation')
  const exactNative = exactQuantile(nativeDurations, 0.99)
  const exactClassic = exactQuantile(classicDurations, 0.99)
  const nativeEstimate = value(await query(`histogram_quantile(0.99, ${nativeSelector})`))
  const classicEstimate = value(await waitFor(`histogram_quantile(0.99, http_request_duration_seconds_bucket{job="classic", route="${ROUTE}"})`, (r) => r.length === 1))
  const nativeError = Math.abs(nativeEstimate - exactNative) / exactNative
  const classicError = Math.abs(classicEstimate - exactClassic) / exactClassic
  t.comment(`0.99 quantile: native ${nativeEstimate} vs exact ${exactNative} (${(nativeError * 100).toFixed(2)}%), classic ${classicEstimate} vs exact ${exactClassic} (${(classicError * 100).toFixed(2)}%)`)
  t.ok(nativeError <= 2 ** (1 / 8) - 1, `native histogram_quantile within one schema-3 bucket (${(nativeError * 100).toFixed(2)}% <= 9.05%)`)
  t.ok(nativeError < classicError, 'closer than the classic buckets')

  // Exemplars: every traced request, with the duration the package observed for it.
  const now = Date.now() / 1000
  const ex = await get(`${api}/api/v1/query_exemplars?${new URLSearchParams({ query: `{job="native", __name__=~"http_request_duration_seconds.*"}`, start: String(now - 600), end: String(now + 60) }).toString()}`)
  const exBody = JSON.parse(ex.body)
  t.equal(exBody.status, 'success', ex.body.slice(0, 500))
  const exemplars: Array<{ labels: Record<string, string>, value: string }> = (exBody.data ?? []).flatMap((s: any) => s.exemplars)
  t.comment(`exemplars returned: ${JSON.stringify(exemplars.map((e) => [e.labels.trace_id, e.value]))}`)
  t.same(exemplars.map((e) => e.labels.trace_id).sort(), [...traced].sort(), 'query_exemplars returns the trace ids sent in traceparent')
  t.same(exemplars.map((e) => e.labels.span_id).sort(), traced.map((_, i) => spanId(i)).sort(), 'and their span ids')
  t.ok(exemplars.every((e) => nativeDurations.includes(Number(e.value))), 'each with the duration observed for its request')
})
