/**
 * Start (created) timestamps in multiprocess mode (docs/multiprocess.md, "Start timestamps";
 * docs/metrics.md, "Start timestamps"): each process writes when each of its counter, histogram
 * and summary series began; the archive keeps the earliest start of what it merged; a scrape
 * serves each summed series' earliest start (none when a part's is unknown: an app series
 * counted before the plugin's first look, a file of an earlier release), never later than what
 * the same store served before unless the sum went down.
 *
 * First the pure parts (the file format, the aggregate and the archive's merge, `keepStarts`),
 * then real processes (test/fixtures/multiprocess/starts-worker.js) whose series begin at known
 * times (their clock is set for it), with prom-client and @prometheus-io/client: the scrape's
 * protobuf `created_timestamp` (protobufjs) and OpenMetrics `_created` (Debian's strict Python
 * parser) are those times exactly, across a SIGKILL and a replacement, the archive, a file
 * without starts, and a reset everywhere.
 */
import t from 'tap'
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { renderRegistryBuffer } from '../lib/exposition'
import { CounterFamily, GaugeFamily, HistogramFamily } from '../lib/families'
import { Aggregate } from '../lib/multiprocess/aggregate'
import { ARCHIVE_FILE, decodeStarts, parseSnapshot, serializeSnapshot, StartsWriter, type ArchiveSnapshot, type FamilySnapshot, type ProcessSnapshot } from '../lib/multiprocess/format'
import { appFamilySnapshot, familySnapshot } from '../lib/multiprocess/snapshot'
import { seriesKey } from '../lib/starts'
import { processFiles, requestsTotal, rpc, sleep, startFixture, tempDir, type Started } from './helpers/multiprocess'
import { decodeDelimited, PROMETHEUS_PROTOBUF_ACCEPT } from './helpers/protobuf'
import { samples } from './helpers/scrape'
import { noParser, protobufCreated, pythonCreated } from './helpers/starts'

// ----- the pure parts

t.test('a process file carries the start of each counter, histogram and summary series', async (t) => {
  const counter = new CounterFamily({ name: 'c_total', help: 'c', labelNames: ['k'], starts: true })
  counter.child('a').startMs = 1000
  counter.child('b').startMs = 2000
  const counterSnap = familySnapshot(counter, undefined)
  t.same(counterSnap.starts, [1000, 1000], 'a counter: each series\' startMs, in the order of its rows, as the difference from the previous one')
  t.same(decodeStarts(counterSnap), [1000, 2000], 'read back')
  const histogram = new HistogramFamily({ name: 'h', help: 'h', labelNames: ['k'], buckets: [1], starts: true })
  histogram.child('a').startMs = 3000
  t.same(decodeStarts(familySnapshot(histogram, undefined)), [3000], 'a histogram')
  const gauge = new GaugeFamily({ name: 'g', help: 'g', labelNames: ['k'], starts: true })
  gauge.child('a').value = 1
  t.notOk('starts' in familySnapshot(gauge, 'sum'), 'a gauge: none')
  const older = new CounterFamily({ name: 'o_total', help: 'o', labelNames: ['k'] })
  older.child('a').value = 1
  t.notOk('starts' in familySnapshot(older, undefined), 'a family without starts (a copy of an earlier release): none, every start unknown')
  const handed = familySnapshot(counter, undefined, new Map([['a', { nums: [0] }]]))
  t.same(decodeStarts(handed), [1000, 2000], 'a series part of which was handed over keeps its start')

  const known = new Map([[seriesKey({ k: 'a' }, ''), 500]])
  const appCounter = appFamilySnapshot({ labelNames: ['k'] }, { name: 'app_total', help: 'x', type: 'counter' as never, aggregator: 'sum' as never, values: [{ labels: { k: 'a' }, value: 2 }, { labels: { k: 'b' }, value: 3 }] }, 'sum', undefined, known)
  t.same(appCounter.starts, [500, null], 'the app\'s counter: the known start, null where unknown')
  t.same(decodeStarts(appCounter), [500, undefined])
  const appHistogram = appFamilySnapshot({ labelNames: ['k'] }, {
    name: 'app_h',
    help: 'x',
    type: 'histogram' as never,
    aggregator: 'sum' as never,
    values: [
      { metricName: 'app_h_bucket', labels: { k: 'a', le: 1 }, value: 1 },
      { metricName: 'app_h_bucket', labels: { k: 'a', le: '+Inf' }, value: 2 },
      { metricName: 'app_h_sum', labels: { k: 'a' }, value: 3 },
      { metricName: 'app_h_count', labels: { k: 'a' }, value: 2 }
    ]
  }, 'sum', undefined, known)
  t.same(decodeStarts(appHistogram), [500], 'the app\'s histogram: the start of its series (by its _count)')
  const appSummary = appFamilySnapshot({ labelNames: ['k'] }, { name: 'app_s', help: 'x', type: 'summary' as never, aggregator: 'sum' as never, values: [{ metricName: 'app_s_sum', labels: { k: 'b' }, value: 1 }, { metricName: 'app_s_count', labels: { k: 'b' }, value: 1 }] }, 'sum', undefined, known)
  t.same(appSummary.starts, [null], 'the app\'s summary')
  const appGauge = appFamilySnapshot({ labelNames: ['k'] }, { name: 'app_g', help: 'x', type: 'gauge' as never, aggregator: 'sum' as never, values: [{ labels: { k: 'a' }, value: 2 }] }, 'sum', undefined, known)
  t.notOk('starts' in appGauge, 'the app\'s gauge: none')
  t.notOk('starts' in appFamilySnapshot({ labelNames: ['k'] }, { name: 'app_total', help: 'x', type: 'counter' as never, aggregator: 'sum' as never, values: [{ labels: { k: 'a' }, value: 2 }] }, 'sum'), 'no starts given: none written')

  const snap: ProcessSnapshot = { format: 'fastify-netbox-metrics/multiprocess', v: 2, host: '00000000', pid: 1, pstart: '0', id: 'x', startedAt: 0, heartbeat: 0, intervalMs: 1000, seq: 0, final: false, families: [appCounter], foreign: [] }
  t.same(parseSnapshot<ProcessSnapshot>(serializeSnapshot(snap), false)?.families[0].starts, [500, null], 'through the file')
  const odd: FamilySnapshot = { name: 'o_total', type: 'counter', help: 'o', labelNames: ['k'], series: [['a', 1], ['b', 1], ['c', 1], ['d', 1], ['e', 1]], starts: [5000, null, 'x' as never, -1000, 7] }
  t.same(decodeStarts(odd), [5000, undefined, undefined, 4000, 4007], 'null and anything but a number: unknown, the next one from the last known')
  t.same(decodeStarts({ ...odd, starts: undefined }), [undefined, undefined, undefined, undefined, undefined], 'no starts: every one unknown')
  t.same(decodeStarts({ ...odd, starts: {} as never }), [undefined, undefined, undefined, undefined, undefined], 'malformed: every one unknown')
  t.same(decodeStarts({ ...odd, series: [...odd.series, ['f', 1]] }), [5000, undefined, undefined, 4000, 4007, undefined], 'fewer starts than rows: the rest unknown')
})

/** A family snapshot with one label `k`; `at`: its series' starts (null: unknown), written as a process writes them. */
function fam (f: Partial<FamilySnapshot> & Pick<FamilySnapshot, 'name' | 'type' | 'series'> & { at?: Array<number | null> }): FamilySnapshot {
  const { at, ...rest } = f
  const snap: FamilySnapshot = { help: f.name, labelNames: ['k'], ...(f.type === 'histogram' ? { buckets: [1] } : {}), ...rest }
  if (at !== undefined) {
    const w = new StartsWriter()
    for (const s of at) w.add(s ?? NaN)
    snap.starts = w.starts
  }
  return snap
}

/** The created timestamps of an aggregate's protobuf exposition. */
async function createdOf (agg: Aggregate, defaultLabels?: Record<string, string>): Promise<Map<string, number | undefined>> {
  return protobufCreated(decodeDelimited(await renderRegistryBuffer(agg.toRegistry(defaultLabels, Registry), 'protobuf')))
}

t.test('the aggregate: the earliest start of the parts, none when a part has none, kept between scrapes', async (t) => {
  const p1 = [
    fam({ name: 'c_total', type: 'counter', series: [['a', 1], ['b', 2]], at: [3000, 1000] }),
    fam({ name: 'h', type: 'histogram', series: [['a', 0.5, 1, 1]], at: [2000] }),
    fam({ name: 's', type: 'summary', series: [['a', 1, 1]], at: [4000] }),
    fam({ name: 'x_total', type: 'counter', series: [['a', 1]], at: [100] }),
    fam({ name: 'g', type: 'gauge', mode: 'sum', series: [['a', 1]], at: [5] })
  ]
  const p2 = [
    fam({ name: 'c_total', type: 'counter', series: [['a', 2], ['b', 1]], at: [1500, null] }),
    fam({ name: 'h', type: 'histogram', series: [['a', 0.5, 1, 1]], at: [1000] }),
    fam({ name: 's', type: 'summary', series: [['a', 1, 1]], at: [4500] })
  ]
  // A file of an earlier release: no starts.
  const old = [fam({ name: 'c_total', type: 'counter', series: [['c', 1]] })]
  const agg = new Aggregate(() => {})
  agg.addFamilies(p1, 'live', 0)
  agg.addFamilies(p2, 'live', 0)
  agg.addFamilies(old, 'dead', 0)
  const served = agg.keepStarts(undefined)
  const created = await createdOf(agg)
  t.same([...created], [
    ['c{k="a"}', 1500], ['c{k="b"}', undefined], ['c{k="c"}', undefined], ['h{k="a"}', 1000], ['s{k="a"}', 4000], ['x{k="a"}', 100]
  ], 'the earliest part\'s start; none where a part has none (null, or a file without starts); gauges none')
  t.same(served.get('c_total')?.get('k="a"', 0), { start: 1500, total: 3 }, 'what was served is kept, with its total')

  const om = (await renderRegistryBuffer(agg.toRegistry(undefined, Registry), 'openmetrics', undefined, { created: true })).toString()
  t.match(om, /^c_created\{k="a"\} 1\.500$/m)
  t.match(om, /^h_created\{k="a"\} 1\.000$/m)
  t.match(om, /^s_created\{k="a"\} 4\.000$/m, 'a summary\'s _created after its _count')
  t.notMatch(om, /^c_created\{k="b"\}/m, 'no _created for a series without a start')
  t.notMatch(om, /^g_created/m)
  if (noParser === false) t.same(pythonCreated(om), new Map([...created].filter(([, v]) => v !== undefined)), 'the Python parser reads the same')
  t.notMatch((await renderRegistryBuffer(agg.toRegistry(undefined, Registry), 'openmetrics')).toString(), /_created/, 'OpenMetrics without the option: none')
  const labelled = await createdOf(agg, { service: 'api' })
  t.equal(labelled.get('c{k="a",service="api"}'), 1500, 'a registry with default labels (rendered through get()): the same starts')
  t.ok(labelled.has('c{k="b",service="api"}') && labelled.get('c{k="b",service="api"}') === undefined, 'and none where unknown')

  // The next scrape: parts come and go.
  const next = new Aggregate(() => {})
  next.addFamilies([
    fam({ name: 'c_total', type: 'counter', series: [['a', 1], ['b', 2]], at: [3000, 1000] }),
    fam({ name: 'h', type: 'histogram', series: [['a', 0.5, 1, 1]], at: [2000] }),
    fam({ name: 's', type: 'summary', series: [['a', 1, 3]], at: [500] })
  ], 'live', 0)
  next.addFamilies([fam({ name: 'c_total', type: 'counter', series: [['a', 2]], at: [5000] })], 'live', 0)
  const served2 = next.keepStarts(served)
  t.same([...await createdOf(next)], [['c{k="a"}', 1500], ['c{k="b"}', 1000], ['h{k="a"}', 2000], ['s{k="a"}', 500]], 'kept / new start / went down / earlier part')
  t.same(served2.get('c_total')?.get('k="a"', 0), { start: 1500, total: 3 }, 'c{k="a"}: its earliest part left without the sum going down: the start served before is kept')
  t.same(served2.get('c_total')?.get('k="b"', 0), { start: 1000, total: 2 }, 'c{k="b"}: the unknown part left, the sum went down: the new start')
  t.same(served2.get('h')?.get('k="a"', 0), { start: 2000, total: 1 }, 'h: the sum went down: the later start')
  t.same(served2.get('s')?.get('k="a"', 0), { start: 500, total: 3 }, 's: an earlier part: earlier')
  t.equal(served2.get('c_total')?.get('k="c"', 2), undefined, 'a series not in this scrape is forgotten')
  t.equal(served2.get('c_total')?.size, 2)
  t.notOk(served2.has('x_total'), 'and a family not in this scrape')
  t.notOk(served2.has('g'), 'gauges are not kept')
})

t.test('the archive keeps the earliest start of what it merged, unknown if any part\'s was', async (t) => {
  const merge = (...sources: FamilySnapshot[][]): FamilySnapshot[] => {
    const agg = new Aggregate(() => {}, true)
    for (const s of sources) agg.addFamilies(s, 'dead', 0)
    return agg.toSnapshots()
  }
  const archive = merge(
    [fam({ name: 'c_total', type: 'counter', series: [['a', 1], ['b', 2]], at: [3000, 1000] }), fam({ name: 's', type: 'summary', series: [['a', 1, 1]], at: [4000] })],
    [fam({ name: 'c_total', type: 'counter', series: [['a', 2], ['b', 1]], at: [1500, null] }), fam({ name: 'h', type: 'histogram', series: [['a', 0.5, 1, 1]], at: [2000] })]
  )
  const byName = new Map(archive.map((f) => [f.name, f]))
  const startsOf = (f: FamilySnapshot | undefined): Array<number | undefined> => f === undefined ? [] : decodeStarts(f)
  t.same(startsOf(byName.get('c_total')), [1500, undefined], 'counters: the earliest; unknown where a part had none')
  t.same(startsOf(byName.get('s')), [4000], 'summaries')
  t.same(startsOf(byName.get('h')), [2000], 'histograms')
  const again = merge(archive, [fam({ name: 'c_total', type: 'counter', series: [['a', 1]], at: [700] })], [fam({ name: 'h', type: 'histogram', series: [['a', 0.5, 1, 1]] })])
  const byName2 = new Map(again.map((f) => [f.name, f]))
  t.same(startsOf(byName2.get('c_total')), [700, undefined], 'merged again: an earlier part moves it back')
  t.same(startsOf(byName2.get('h')), [undefined], 'a file of an earlier release merged in: unknown')
  const scrape = new Aggregate(() => {})
  scrape.addFamilies(again, 'dead', 0)
  scrape.addFamilies([fam({ name: 's', type: 'summary', series: [['a', 1, 1]], at: [9000] })], 'live', 0)
  scrape.keepStarts(undefined)
  t.same([...await createdOf(scrape)], [['c{k="a"}', 700], ['c{k="b"}', undefined], ['s{k="a"}', 4000], ['h{k="a"}', undefined]], 'a scrape reads the archive\'s starts')
})

// ----- real processes

const FLUSH_MS = '100'
const HELLO = 'method="GET",route="/hello",status_code="200"'

/** A scrape through worker `w`: the created timestamps (protobuf), then the samples (text). */
async function scrape (w: Started): Promise<{ created: Map<string, number | undefined>, values: Map<string, number>, text: string }> {
  const pb = await rpc(w, { cmd: 'scrape', accept: PROMETHEUS_PROTOBUF_ACCEPT })
  const text = await rpc(w, { cmd: 'scrape' })
  if (pb.status !== 200 || text.status !== 200) throw new Error(`scrape answered ${String(pb.status)} / ${String(text.status)}`)
  return { created: protobufCreated(decodeDelimited(Buffer.from(pb.body, 'base64'))), values: samples(text.body), text: text.body }
}

/** Kills every worker still running at teardown. */
function workersOf (t: Tap.Test): Started[] {
  const workers: Started[] = []
  t.teardown(() => { for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL') })
  return workers
}

/** A time in the future, on a whole second: every fake time of a test is after every real one. */
function futureBase (): number {
  return Math.ceil(Date.now() / 1000) * 1000 + 3_600_000
}

for (const client of ['prom-client', '@prometheus-io/client']) {
  t.test(`${client}: two processes; each summed series starts at the earliest of its parts; a reset everywhere starts it again`, async (t) => {
    const dir = tempDir(t)
    const workers = workersOf(t)
    const env = { MP_DIR: dir, FLUSH_MS, CLIENT: client }
    // a counted app_jobs_total{kind="early"} before registering the plugin: its start there is unknown.
    const a = await startFixture('starts-worker.js', { ...env, EARLY: '1' })
    workers.push(a)
    const b = await startFixture('starts-worker.js', env)
    workers.push(b)
    const base = futureBase()
    await rpc(a, { cmd: 'begin', at: base + 5000, kinds: ['x'], n: 3 })
    await rpc(b, { cmd: 'begin', at: base + 1000, kinds: ['x', 'early'], n: 3 })
    await rpc(a, { cmd: 'begin', at: base + 7000, kinds: ['a-only'], n: 1 })

    const expected: Array<[string, number]> = [
      [`http_requests{${HELLO}}`, base + 1000],
      [`http_request_duration_seconds{${HELLO}}`, base + 1000],
      ['http_requests_received{method="GET"}', base + 1000],
      ['app_jobs{kind="x"}', base + 1000],
      ['app_size_bytes{kind="x"}', base + 1000],
      ['app_wait_seconds{kind="x"}', base + 1000],
      ['app_jobs{kind="a-only"}', base + 7000],
      ['app_size_bytes{kind="a-only"}', base + 7000],
      ['app_wait_seconds{kind="a-only"}', base + 7000]
    ]
    for (const [w, label] of [[a, 'scraped by the first'], [b, 'scraped by the second']] as const) {
      const s = await scrape(w)
      for (const [series, start] of expected) t.equal(s.created.get(series), start, `${label}: ${series} starts at the earliest start of its parts`)
      t.equal(requestsTotal(s.text, '/hello'), 7, `${label}: the sum`)
      t.equal(s.values.get('app_jobs_total{kind="x"}'), 6)
      t.equal(s.values.get('app_jobs_total{kind="early"}'), 4, `${label}: app_jobs_total{kind="early"} summed...`)
      t.ok(s.created.has('app_jobs{kind="early"}') && s.created.get('app_jobs{kind="early"}') === undefined, '...without a start: one part\'s is unknown')
      t.equal(s.created.get('app_polled{kind="poll"}'), w === a ? base + 5000 : base + 1000, `${label}: a metric with collect(): the scraping process's own start (its first collect, at 0), not the scrape's time`)
      const cpu = [...s.created].filter(([k]) => k.startsWith('process_cpu_user_seconds{'))
      t.equal(cpu.length, 2, `${label}: the default metrics, one series per process...`)
      t.same(cpu.map(([, v]) => v), [undefined, undefined], '...without a start')
      t.notOk([...s.created.keys()].some((k) => k.startsWith('app_level') || k.startsWith('http_requests_in_flight')), 'gauges have none')
    }

    const om = await rpc(b, { cmd: 'scrape', accept: 'application/openmetrics-text' })
    t.equal(om.status, 200)
    for (const [series, start] of expected) {
      const [name, labels] = series.split('{')
      t.ok(om.body.includes(`\n${name}_created{${labels} ${(start / 1000).toFixed(3)}\n`), `OpenMetrics: ${name}_created{${labels} ${start / 1000}`)
    }
    t.match(om.body, /^app_jobs_total\{kind="early"\} 4$/m)
    t.notMatch(om.body, /^app_jobs_created\{kind="early"\}/m, 'no _created for the series without a start')
    t.notMatch(om.body, /^app_level_created/m, 'nor for a gauge')
    if (noParser === false) {
      const parsed = pythonCreated(om.body)
      for (const [series, start] of expected) t.equal(parsed.get(series), start, `the Python parser: ${series}`)
      const pb = (await scrape(b)).created
      const differ = [...parsed].filter(([k, v]) => pb.has(k) && pb.get(k) !== v)
      t.same(differ, [], 'the Python parser reads every _created as the protobuf created_timestamp of the next scrape')
    } else t.comment(`skipped the Python parser: ${noParser}`)

    // A reset everywhere, then fewer counts than before: the sums went down, they start again.
    await rpc(a, { cmd: 'reset', at: base + 20_000, kind: 'x' })
    await rpc(b, { cmd: 'reset', at: base + 15_000, kind: 'x' })
    for (const [w, label] of [[a, 'scraped by the first'], [b, 'scraped by the second']] as const) {
      const s = await scrape(w)
      t.equal(requestsTotal(s.text, '/hello'), 2, `${label}: after the reset, the sum went down`)
      for (const series of [`http_requests{${HELLO}}`, 'app_jobs{kind="x"}', 'app_size_bytes{kind="x"}', 'app_wait_seconds{kind="x"}']) {
        t.equal(s.created.get(series), base + 15_000, `${label}: ${series} starts at the earlier of the two resets`)
      }
    }
  })
}

t.test('a SIGKILLed worker replaced by a later one: the start does not move; the archive keeps it; a part without a start', async (t) => {
  const dir = tempDir(t)
  const workers = workersOf(t)
  const env = { MP_DIR: dir, FLUSH_MS, CLIENT: 'prom-client' }
  const a = await startFixture('starts-worker.js', env)
  workers.push(a)
  const b = await startFixture('starts-worker.js', env)
  workers.push(b)
  const base = futureBase()
  await rpc(a, { cmd: 'begin', at: base + 1000, kinds: ['x'], n: 3 })
  await rpc(b, { cmd: 'begin', at: base + 4000, kinds: ['x'], n: 3 })
  const check = async (w: Started, start: number | undefined, total: number, label: string): Promise<void> => {
    const s = await scrape(w)
    t.equal(requestsTotal(s.text, '/hello'), total, `${label}: http_requests_total = ${total}`)
    t.equal(s.created.get(`http_requests{${HELLO}}`), start, `${label}: http_requests_total starts at ${String(start)}`)
  }
  await check(b, base + 1000, 6, 'two workers')
  t.equal((await scrape(b)).created.get('app_jobs{kind="x"}'), base + 1000, 'the app\'s counter too')

  a.child.kill('SIGKILL')
  t.same(await a.exited, { code: null, signal: 'SIGKILL' }, 'the first worker, whose series began first, is SIGKILLed')
  const c = await startFixture('starts-worker.js', env)
  workers.push(c)
  await rpc(c, { cmd: 'begin', at: base + 9000, kinds: ['x'], n: 3 })
  await check(c, base + 1000, 9, 'its replacement, whose series begin later, scraped: the start stays the earliest')
  t.equal((await scrape(c)).created.get('app_jobs{kind="x"}'), base + 1000, 'the app\'s counter too')

  // The SIGKILLed worker's file is merged into the archive by a live one.
  const archivePath = join(dir, ARCHIVE_FILE)
  for (let i = 0; i < 150 && (processFiles(dir).some((n) => n.includes(`-${a.pid}-`)) || !existsSync(archivePath)); i++) await sleep(100)
  t.notOk(processFiles(dir).some((n) => n.includes(`-${a.pid}-`)), 'the killed worker\'s file was merged')
  const archive = parseSnapshot<ArchiveSnapshot>(readFileSync(archivePath, 'utf8'), true)
  const startIn = (name: string, match: (row: unknown[]) => boolean): unknown => {
    const f = archive?.families.find((x) => x.name === name)
    const r = f?.series.findIndex((row) => match(row)) ?? -1
    return f === undefined || r < 0 ? 'no such series' : decodeStarts(f)[r]
  }
  t.equal(startIn('http_requests_total', (row) => row[1] === '/hello'), base + 1000, 'the archive holds its start')
  t.equal(startIn('app_jobs_total', (row) => row[0] === 'x'), base + 1000, 'and the app\'s counter\'s')
  await check(b, base + 1000, 9, 'after the merge')
  await check(c, base + 1000, 9, 'after the merge, through the replacement')

  // A process of another node (judged by its file alone), holding http_requests_total{/hello}.
  const own = parseSnapshot<ProcessSnapshot>(readFileSync(join(dir, processFiles(dir).find((n) => n.includes(`-${b.pid}-`)) as string), 'utf8'), false) as ProcessSnapshot
  const requests = own.families.find((f) => f.name === 'http_requests_total') as FamilySnapshot
  const helloRow = requests.series.find((row) => row[1] === '/hello') as unknown[]
  const otherNode = (value: number, starts?: Array<number | null>): string => {
    const id = 'beef0000-4242-1-0123456789ab'
    const family: FamilySnapshot = { name: requests.name, type: 'counter', help: requests.help, labelNames: requests.labelNames, series: [[...helloRow.slice(0, 3) as string[], value]] }
    if (starts !== undefined) family.starts = starts
    const snap: ProcessSnapshot = { format: own.format, v: 2, host: 'beef0000', pid: 4242, pstart: '1', id, startedAt: Date.now(), heartbeat: Date.now(), intervalMs: 100, seq: 0, final: false, families: [family], foreign: [] }
    const path = join(dir, `fnm-${id}.json`)
    writeFileSync(path, serializeSnapshot(snap))
    return path
  }
  // A file of an earlier release, without starts (a rolling deploy): no start while it counts.
  let path = otherNode(1)
  await check(b, undefined, 10, 'with a file without starts')
  unlinkSync(path)
  await check(b, base + 1000, 9, 'once it is gone (the sum went down)')
  // A part that began earlier, at 0 (one series: its start written as it is): it moves the start back; when it leaves without the sum
  // going down, the start served stays (only a store that served it keeps it).
  path = otherNode(0, [base + 500])
  await check(b, base + 500, 9, 'with a part at 0 that began earlier')
  unlinkSync(path)
  await check(b, base + 500, 9, 'that part gone, the sum unchanged: the start served is kept')
  await check(b, base + 500, 9, 'and stays')
  await check(c, base + 1000, 9, 'another store, which never served the earlier start, serves the earliest of the parts')
})
