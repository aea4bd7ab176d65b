/**
 * Native histograms and exemplars in the shared-directory mode, with real processes, checked
 * with exact values against what the test observed itself:
 * - three processes with different settings (schema 3; a finer schema with few buckets, which
 *   reduces its resolution; classic buckets only): a scrape, decoded by protobufjs, holds one
 *   native histogram whose schema is the finest at or below every process's at which all the
 *   buckets fit, and whose every count is the definition's (bucket k of schema s holds
 *   (2^((k-1)/2^s), 2^(k/2^s)]) for the values the processes observed; the classic-only process's
 *   observations are carried over at their classic bucket's upper bound;
 * - the same after a process is SIGKILLed and merged into the archive, after one exits, after a
 *   hand-over in one process (the app closed and a new one registered on the same registry), and
 *   with a process whose zero threshold is wider (the zero bucket widened as Prometheus does);
 * - successive scrapes never go down in Prometheus's sense: the schema never gets finer, the
 *   zero threshold never narrower, no bucket (at the coarser schema) decreases;
 * - exemplars: the latest of each classic bucket over the running processes;
 * - a real Prometheus (Debian's 2.42, skipped when missing) scraping a node:cluster of workers
 *   over protobuf: histogram_count equals the requests sent, across a SIGKILLed worker, and
 *   query_exemplars returns the trace ids sent in traceparent headers.
 * Randomized values print their seed; FNM_NATIVE_SEED replays one.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_LATENCY_BUCKETS } from '../lib/metrics'
import { get, load, processFiles, rpc, sleep, startFixture, tempDir, type Started } from './helpers/multiprocess'
import { continues, decodeDelimited, nativeOf, PROMETHEUS_PROTOBUF_ACCEPT, type NativeState as Expected } from './helpers/protobuf'
import { Proc } from './helpers/proc'
import { prometheusApi, startPrometheus } from './helpers/prometheus'
import { get as getUrl } from './helpers/net'

const seed = Number(process.env.FNM_NATIVE_SEED ?? Math.floor(Math.random() * 2 ** 31))
t.comment(`seed ${seed} (replay with FNM_NATIVE_SEED=${seed})`)
let state = seed
function random (): number {
  state = (state + 0x6d2b79f5) | 0
  let x = Math.imul(state ^ (state >>> 15), 1 | state)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
/** `n` values log-uniform in [lo, hi]. */
const logUniform = (n: number, lo: number, hi: number): number[] => Array.from({ length: n }, () => lo * (hi / lo) ** random())

const FLUSH_MS = 200
const ZT = 2 ** -128

/** The key by the definition, with logarithms (the values are random: none sits on a boundary). */
function referenceKey (v: number, schema: number): number {
  return Math.ceil(Math.log2(v) * 2 ** schema - 1e-9)
}

/** Where the package carries a classic-only observation: its classic bucket's upper bound (or just above the last). */
function classicStandIn (v: number): number {
  const b = DEFAULT_LATENCY_BUCKETS.find((x) => v <= x)
  return b ?? DEFAULT_LATENCY_BUCKETS[DEFAULT_LATENCY_BUCKETS.length - 1] * (1 + 2 ** -52)
}


/**
 * The merged native histogram by the definition: `native` values of processes with native
 * buckets (each process's own schema given), `classic` values of processes without, carried
 * over; the scraper's schema and maxBuckets; `widest` the widest zero threshold when they differ.
 */
function expectedNative (native: number[], classic: number[], schemas: number[], maxBuckets: number, widest?: number): Expected {
  const values = [...native, ...classic.map(classicStandIn)]
  for (let schema = Math.min(...schemas); ; schema--) {
    const zt = widest === undefined ? ZT : 2 ** (referenceKey(widest, schema) / 2 ** schema)
    const buckets = new Map<number, number>()
    let zeroCount = 0
    for (const v of values) {
      if (v <= zt) { zeroCount++; continue }
      const k = referenceKey(v, schema)
      buckets.set(k, (buckets.get(k) ?? 0) + 1)
    }
    const keys = [...buckets.keys()]
    if (keys.length === 0 || Math.max(...keys) - Math.min(...keys) + 1 <= maxBuckets || schema === -4) return { schema, zeroThreshold: zt, zeroCount, buckets }
  }
}

/** A process's own schema by the definition: the finest at or below `schema` at which its values fit `maxBuckets`. */
function ownSchema (values: number[], schema: number, maxBuckets: number): number {
  for (; schema > -4; schema--) {
    const keys = values.map((v) => referenceKey(v, schema))
    if (Math.max(...keys) - Math.min(...keys) + 1 <= maxBuckets) break
  }
  return schema
}

/** GET /metrics over protobuf; the decoded `Histogram` of the test's series. */
async function scrapeNative (port: number): Promise<any> {
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false, headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`scrape answered ${res.statusCode ?? 0}`)))
    })
    req.on('error', reject)
  })
  const family = decodeDelimited(body).find((f) => f.name === 'http_request_duration_seconds')
  const metric = family?.metric?.find((m: any) => m.label.some((l: any) => l.name === 'route' && l.value === '/native'))
  if (metric === undefined) throw new Error('no http_request_duration_seconds{route="/native"} in the scrape')
  return metric.histogram
}

/** Classic bucket counts (cumulative) by the definition, for `values`. */
function classicCumulative (values: number[]): number[] {
  return DEFAULT_LATENCY_BUCKETS.map((b) => values.filter((v) => v <= b).length)
}

/** The trace id of each classic bucket's exemplar, by bucket index. */
function exemplarsOf (h: any): Record<number, string> {
  const out: Record<number, string> = {}
  ;(h.bucket ?? []).forEach((b: any, i: number) => {
    const id = b.exemplar?.label?.find((l: any) => l.name === 'trace_id')?.value
    if (id !== undefined) out[i] = id
  })
  return out
}

async function waitFor (what: string, ok: () => boolean, ms = 15000): Promise<void> {
  const until = Date.now() + ms
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

t.test('native buckets merged exactly across processes, the archive and a hand-over; exemplars of the running processes', async (t) => {
  const dir = tempDir(t)
  const procs: Started[] = []
  t.teardown(() => { for (const p of procs) p.child.kill('SIGKILL') })
  const start = async (native: unknown): Promise<Started> => {
    const p = await startFixture('native-worker.js', { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS), NATIVE: JSON.stringify(native) })
    procs.push(p)
    return p
  }
  const a = await start(true) // schema 3, 160 buckets
  const b = await start({ bucketFactor: 1.05, maxBuckets: 80 }) // schema 4, few buckets: reduces
  const c = await start(false) // classic buckets only

  const aValues = logUniform(400, 0.001, 2)
  const bValues = logUniform(300, 1e-6, 100)
  const cValues = [...logUniform(200, 0.001, 20), 60, 70] // two above the highest classic bound
  const aTraced: Array<[number, string, string]> = [[0.0007, 'a1'.padEnd(32, '0'), 'a1'.padEnd(16, '0')], [0.0008, 'a2'.padEnd(32, '0'), 'a2'.padEnd(16, '0')], [0.3, 'a3'.padEnd(32, '0'), 'a3'.padEnd(16, '0')]]
  const bTraced: Array<[number, string, string]> = [[0.02, 'b1'.padEnd(32, '0'), 'b1'.padEnd(16, '0')], [4, 'b2'.padEnd(32, '0'), 'b2'.padEnd(16, '0')]]
  await rpc(a, { op: 'observe', values: [...aValues.map((v) => [v]), ...aTraced] })
  await rpc(b, { op: 'observe', values: [...bValues.map((v) => [v]), ...bTraced] })
  await rpc(c, { op: 'observe', values: cValues.map((v) => [v]) })
  const aAll = [...aValues, ...aTraced.map((x) => x[0])]
  const bAll = [...bValues, ...bTraced.map((x) => x[0])]
  const sA = ownSchema(aAll, 3, 160)
  const sB = ownSchema(bAll, 4, 80)
  t.ok(sB < 3, `the process with few buckets reduced its resolution: schema ${sB}`)
  // Each scrape writes its process's snapshot first: the others' files are then current.
  await get(b.port, '/metrics')
  await get(c.port, '/metrics')

  const history: Expected[] = []
  const check = (h: any, label: string, native: number[], classic: number[], schemas: number[], widest?: number): void => {
    const expected = expectedNative(native, classic, schemas, 160, widest)
    const got = nativeOf(h)
    t.equal(h.sampleCount, native.length + classic.length, `${label}: _count`)
    t.same(got.schema, expected.schema, `${label}: schema ${expected.schema}, the finest every process and the bucket limit allow`)
    t.equal(got.zeroThreshold, expected.zeroThreshold, `${label}: zero threshold`)
    t.equal(got.zeroCount, expected.zeroCount, `${label}: zero bucket`)
    t.same(Object.fromEntries(got.buckets), Object.fromEntries(expected.buckets), `${label}: every native bucket by the definition`)
    t.same((h.bucket ?? []).slice(0, DEFAULT_LATENCY_BUCKETS.length).map((x: any) => x.cumulativeCount ?? 0), classicCumulative([...native, ...classic]), `${label}: the classic buckets alongside`)
    const sum = [...native, ...classic].reduce((x, y) => x + y, 0)
    t.ok(Math.abs(h.sampleSum - sum) <= 1e-9 * sum, `${label}: _sum ${h.sampleSum} ~ ${sum}`)
    const previous = history[history.length - 1]
    if (previous !== undefined) t.same(continues(previous, got), [], `${label}: continues the previous scrape (no counter reset for Prometheus)`)
    history.push(got)
  }

  let h = await scrapeNative(a.port)
  check(h, 'three processes', [...aAll, ...bAll], cValues, [3, sA, sB])
  t.same(exemplarsOf(h), { 0: aTraced[1][1], 9: aTraced[2][1], 4: bTraced[0][1], 13: bTraced[1][1] }, 'exemplars: the latest of each classic bucket, from every running process')
  const om = (await getUrl(`http://127.0.0.1:${a.port}/metrics`, 5000, { accept: 'application/openmetrics-text; version=1.0.0' })).body
  const omExemplars = om.split('\n').filter((l) => l.startsWith('http_request_duration_seconds_bucket{') && l.includes('route="/native"') && l.includes(' # {'))
    .map((l) => { const m = /le="([^"]+)"\} \d+ # \{trace_id="(\w+)",span_id="(\w+)"\} (\S+) /.exec(l); return m === null ? l : `${m[1]} ${m[2]} ${m[3]} ${m[4]}` })
  const line = ([v, trace, span]: [number, string, string], le: string): string => `${le} ${trace} ${span} ${v}`
  t.same(omExemplars, [line(aTraced[1], '0.001'), line(bTraced[0], '0.025'), line(aTraced[2], '0.5'), line(bTraced[1], '5.0')], 'the same exemplars in OpenMetrics, with their values')
  const classicOnly = await scrapeNative(c.port)
  t.equal(classicOnly.schema, undefined, 'a process without native histograms serves classic buckets only')
  t.same(classicOnly.bucket.map((x: any) => x.cumulativeCount), h.bucket.map((x: any) => x.cumulativeCount), 'the same classic counts')

  // B is SIGKILLed: its last snapshot (written by its scrape) holds everything; A merges it into the archive.
  b.child.kill('SIGKILL')
  await b.exited
  procs.splice(procs.indexOf(b), 1)
  await waitFor('the killed process merged into the archive', () => existsSync(join(dir, 'fnm-archive.json')) && processFiles(dir).length === 2)
  const archive = JSON.parse(readFileSync(join(dir, 'fnm-archive.json'), 'utf8'))
  const archived = archive.families.find((f: any) => f.name === 'http_request_duration_seconds')
  t.equal(archived.native?.[0]?.[0], sB, 'the archive keeps the native buckets at the killed process\'s schema')
  h = await scrapeNative(a.port)
  check(h, 'after a SIGKILL and the merge into the archive', [...aAll, ...bAll], cValues, [3, sA, sB])
  t.same(exemplarsOf(h), { 0: aTraced[1][1], 9: aTraced[2][1] }, 'exemplars of running processes only')

  // C exits: its final snapshot is merged; the archive converts nothing twice.
  c.child.send({ op: 'exit' })
  await c.exited
  procs.splice(procs.indexOf(c), 1)
  await waitFor('the exited process merged into the archive', () => processFiles(dir).length === 1)
  h = await scrapeNative(a.port)
  check(h, 'after an exit', [...aAll, ...bAll], cValues, [3, sA, sB])

  // A hands over (app closed, a new one on the same registry), then observes values wide enough
  // to reduce its resolution: what it handed over, at the finer schema, is not counted again.
  const reopened = await rpc(a, { op: 'reopen' })
  const aMore = logUniform(150, 1e-7, 50)
  await rpc(a, { op: 'observe', values: aMore.map((v) => [v]) })
  const sA2 = ownSchema([...aAll, ...aMore], 3, 160)
  t.ok(sA2 < sA, `the series reduced its resolution after the hand-over: schema ${sA} -> ${sA2}`)
  h = await scrapeNative(reopened.port)
  check(h, 'after a hand-over', [...aAll, ...aMore, ...bAll], cValues, [3, sA2, sB])

  // D has a wider zero threshold: every scrape widens the zero bucket the same way.
  const d = await start({ zeroThreshold: 0.002 })
  const dValues = logUniform(150, 0.0005, 0.01)
  await rpc(d, { op: 'observe', values: dValues.map((v) => [v]) })
  await get(d.port, '/metrics')
  const all = [...aAll, ...aMore, ...bAll, ...dValues]
  h = await scrapeNative(reopened.port)
  check(h, 'with a wider zero threshold', all, cValues, [3, sA2, sB, ownSchema(dValues.filter((v) => v > 0.002), 3, 160)], 0.002)
  const fromD = await scrapeNative(d.port)
  t.same(nativeOf(fromD), nativeOf(h), 'the process with the wider threshold serves the same native histogram')
})

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus'
const noPrometheus = existsSync(PROMETHEUS) && spawnSync(PROMETHEUS, ['--version']).status === 0
  ? false
  : `${PROMETHEUS} is not installed (Debian: apt-get install prometheus); .ci/run installs it`

t.test('a real Prometheus scrapes a node:cluster of workers over protobuf: one native histogram for all of them', { skip: noPrometheus, timeout: 180000 }, async (t) => {
  // Removed by this test's own teardown once the cluster has gone (tempDir's teardown would run
  // first, while the workers still write their last snapshots: ENOTEMPTY under load).
  const dir = mkdtempSync(join(tmpdir(), 'fnm-mp-'))
  const tmp = mkdtempSync(join(tmpdir(), 'fnm-e2e-mp-native-'))
  const procs: Proc[] = []
  const primary = await startFixture('cluster.js', { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS), WORKERS: '3', NATIVE: 'true' })
  t.teardown(async () => {
    for (const p of procs) await p.stop(5000)
    primary.child.kill('SIGTERM')
    await Promise.race([primary.exited, sleep(5000)])
    if (t.passing() === false) for (const p of procs) console.error(`--- ${p.name} output ---\n${p.output.slice(-4000)}`)
    rmSync(tmp, { recursive: true, force: true })
    // A worker may still write its last snapshot after the primary has gone: retry until it is.
    rmSync(dir, { recursive: true, force: true, maxRetries: 50, retryDelay: 200 })
  })
  const { proc: prom, api } = await startPrometheus(PROMETHEUS, tmp, [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: cluster',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${primary.port}']`,
    ''
  ].join('\n'), ['--enable-feature=native-histograms,exemplar-storage'])
  procs.push(prom)
  const { waitFor: promWait, value } = prometheusApi(api, () => prom.exited)
  await promWait('up', (r) => value(r) === 1)

  const selector = 'http_request_duration_seconds{job="cluster", route="/hello"}'
  await load(primary.port, '/hello', 600)
  let r = await promWait(`histogram_count(${selector})`, (x) => value(x) === 600)
  t.equal(value(r), 600, 'histogram_count is the 600 requests sent, whichever worker served them and the scrape')

  // A worker is SIGKILLed (after its snapshot of every request it served) and replaced.
  const { pids } = await rpc(primary, { cmd: 'pids' })
  await sleep(3 * FLUSH_MS)
  await rpc(primary, { cmd: 'kill', pid: pids[0] })
  await load(primary.port, '/hello', 300)
  r = await promWait(`histogram_count(${selector})`, (x) => value(x) === 900)
  t.equal(value(r), 900, 'and 900 after 300 more, across a SIGKILLed worker and its replacement')
  const end = Date.now() / 1000
  const range = JSON.parse((await getUrl(`${api}/api/v1/query_range?${new URLSearchParams({ query: `histogram_count(${selector})`, start: String(end - 120), end: String(end), step: '1' }).toString()}`)).body)
  const counts: number[] = range.data.result[0].values.map((v: [number, string]) => Number(v[1]))
  t.same(counts.filter((v, i) => i > 0 && v < counts[i - 1]), [], `histogram_count never went down in Prometheus (${counts.length} points)`)

  // Traced requests one at a time, each given two scrapes. Prometheus 2.42 reads one exemplar per
  // series and scrape, the first bucket's that has one, and each bucket keeps its latest: so each
  // traced request is much faster than the one before (300 ms, 60 ms, 0 ms: a lower bucket each
  // time), and each must come back, whichever worker served it.
  const ids: string[] = []
  for (let i = 0; i < 3; i++) {
    const id = `${(0xc0ffee00 + i).toString(16)}111122223333444455556666`
    ids.push(id)
    await getUrl(`http://127.0.0.1:${primary.port}/work/${[300, 60, 0][i]}`, 5000, { traceparent: `00-${id}-${'7'.repeat(15)}${i}-01` })
    await sleep(2200)
  }
  const now = Date.now() / 1000
  const ex = await getUrl(`${api}/api/v1/query_exemplars?${new URLSearchParams({ query: 'http_request_duration_seconds{job="cluster", route="/work/:ms"}', start: String(now - 600), end: String(now + 60) }).toString()}`)
  const exemplars: Array<{ labels: Record<string, string> }> = (JSON.parse(ex.body).data ?? []).flatMap((s: any) => s.exemplars)
  t.same(exemplars.map((e) => e.labels.trace_id).sort(), [...ids].sort(), 'query_exemplars returns the trace ids sent, whichever worker served them')
})
