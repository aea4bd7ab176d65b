'use strict'
/**
 * Multiprocess mode benchmark (`docs/multiprocess.md`).
 *
 * 1. Throughput: the same server in single-process mode and in multiprocess mode (default flush
 *    interval, 1 s), each holding 2,000 extra label sets so that every flush writes a realistic
 *    snapshot. Server pinned to CPU 0, load generator (wrk, else autocannon) to CPU 1; rounds
 *    alternate the order; the ratio is taken pair by pair, then the median is reported.
 * 2. Flush cost, measured directly: CPU per timer flush of the same 2,000 label sets, over the
 *    interval. Requests do the same work in both modes, so this is the whole extra cost.
 * 3. Scrape time: 8 stores (standing for 8 workers) share a directory, each with 2,000 label sets
 *    in http_requests_total and http_request_duration_seconds (a counter and a 19-bucket
 *    histogram); the time for one of them to serve a scrape (flush its own file, read the 7
 *    others and the archive, aggregate, render) is measured, median of repeated runs.
 * 4. Native histograms: the same 8 x 2,000 label sets, each series given 10 observations from
 *    1 ms to 1 s, with classic buckets only (text scrape) and with `nativeHistograms: true`
 *    (protobuf scrape, native and classic buckets merged): scrape time, flush cost, file size.
 *
 *   node bench/multiprocess.js [--rounds 5] [--seconds 3] [--connections 32] [--scrapes 21]
 * Writes bench/results/multiprocess.json.
 */
const { writeFileSync, mkdirSync, mkdtempSync, rmSync, readdirSync, statSync } = require('node:fs')
const { join } = require('node:path')
const os = require('node:os')
const { load, machine, median, opt, round3, startServer, summary } = require('./common')

const ROUNDS = opt('rounds', 5)
const SECONDS = opt('seconds', 3)
const CONNECTIONS = opt('connections', 32)
const SCRAPES = opt('scrapes', 21)
const SERIES = 2000
const WORKERS = 8


/** 2,000 label sets: 200 routes x 5 status codes x 2 methods. */
function* labelSets () {
  for (let r = 0; r < 200; r++) for (const status of ['200', '201', '400', '404', '500']) for (const method of ['GET', 'POST']) yield [method, `/api/dcim/thing${r}/:id`, status]
}

// ----- the server (child process)
async function server () {
  const Fastify = require('fastify')
  const app = Fastify({ logger: false })
  const opts = { enabled: true }
  if (process.env.MODE === 'multi') opts.multiprocess = { dir: process.env.MP_DIR }
  await app.register(require('..'), opts)
  app.get('/item/:id', async (request) => ({ id: request.params.id, name: 'device', status: 'active' }))
  await app.ready()
  const requests = app.metrics.registry.getSingleMetric('http_requests_total')
  const duration = app.metrics.registry.getSingleMetric('http_request_duration_seconds')
  for (const l of labelSets()) { requests.child(...l).value++; duration.child(...l).observe(0.01) }
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
  process.send('ready')
}

const start = (mode, port, dir) => startServer(__filename, { ...process.env, ROLE: 'server', MODE: mode, PORT: String(port), MP_DIR: dir })

/** Requests per second of one load run. */
const rpsOf = (port, seconds) => load(port, seconds, CONNECTIONS).rps

async function throughput (dir) {
  const modes = ['single', 'multi']
  const servers = {}
  let port = 40300
  for (const mode of modes) servers[mode] = { port, child: await start(mode, port++, dir) }
  try {
    for (const mode of modes) rpsOf(servers[mode].port, 1)
    const rounds = []
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? modes : [...modes].reverse()
      const round = {}
      for (const mode of order) round[mode] = rpsOf(servers[mode].port, SECONDS)
      rounds.push(round)
      process.stderr.write(`round ${r + 1}/${ROUNDS}: single ${Math.round(round.single)}/s, multi ${Math.round(round.multi)}/s\n`)
    }
    const ratios = rounds.map((r) => r.multi / r.single)
    return {
      medianRps: { single: Math.round(median(rounds.map((r) => r.single))), multi: Math.round(median(rounds.map((r) => r.multi))) },
      multiVsSingle: summary(ratios),
      extraCostPerRequestPct: round3((1 / median(ratios) - 1) * 100),
      rounds
    }
  } finally {
    for (const mode of modes) servers[mode].child.kill()
  }
}

/**
 * The store of one worker (number `w`) in `dir`: 2,000 label sets in http_requests_total and
 * http_request_duration_seconds, with values that differ from worker to worker. Flushes only when
 * asked (the timer interval is an hour). `dist`: the build to load (bench/multiprocess-cpu.js
 * compares two).
 */
function workerStore (dir, w, spread = { native: false, observations: 1 }, dist = join(__dirname, '..', 'dist')) {
  const { Registry } = require('prom-client')
  const { MetricSet, DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } = require(join(dist, 'lib', 'metrics.js'))
  const { MultiprocessStore } = require(join(dist, 'lib', 'multiprocess'))
  const { resolveOptions } = require(join(dist, 'lib', 'options.js'))
  const buckets = { latency: DEFAULT_LATENCY_BUCKETS, size: DEFAULT_SIZE_BUCKETS }
  const nativeHistograms = spread.native ? resolveOptions({ nativeHistograms: true }).nativeHistograms : null
  const registry = new Registry()
  const metrics = new MetricSet({ registry, prefix: '', buckets, maxSeriesPerMetric: 10000, nativeHistograms })
  const requests = metrics.get('httpRequests')
  const duration = metrics.get('httpDuration')
  const n = spread.observations
  for (const l of labelSets()) {
    requests.child(...l).value += w + 1
    const series = duration.child(...l)
    if (n === 1) series.observe(0.003 * (w + 1))
    else for (let j = 0; j < n; j++) series.observe(0.001 * 1000 ** (j / (n - 1)) * (1 + w / 10))
  }
  return MultiprocessStore.acquire({ registry, prefix: '', buckets, nativeHistograms, config: { dir, flushIntervalMs: 3_600_000, source: 'bench' }, onError: (c, e) => { throw e } })
}

async function scrapeTime (dir, spread, format = 'prometheus') {
  const stores = []
  for (let w = 0; w < WORKERS; w++) stores.push(workerStore(dir, w, spread))
  for (const s of stores) await s.flush(false)
  const fileBytes = readdirSync(dir).filter((n) => n.startsWith('fnm-')).map((n) => statSync(join(dir, n)).size)
  const times = []
  let lines = 0
  let bytes = 0
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = process.hrtime.bigint()
    const body = await stores[i % WORKERS].renderBuffer(format)
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    lines = body.toString('utf8').split('\n').length
    bytes = body.length
  }
  // Single-process reference: the same registry rendered alone.
  const { renderRegistry } = require('../dist/lib/exposition.js')
  const single = []
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = process.hrtime.bigint()
    await renderRegistry(stores[0].registry, 'prometheus')
    single.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  for (const s of stores) await s.release()
  return {
    workers: WORKERS,
    seriesPerWorker: { http_requests_total: SERIES, http_request_duration_seconds: SERIES },
    fileBytesPerWorker: Math.round(median(fileBytes)),
    exposedLines: lines,
    exposedBytes: bytes,
    medianMs: round3(median(times)),
    minMs: round3(Math.min(...times)),
    maxMs: round3(Math.max(...times)),
    singleProcessRenderMedianMs: round3(median(single))
  }
}

/**
 * Two sets of 8 stores (`a` and `b`), scraped alternately (a, b, a, b...), so that both meet the
 * same moments of the machine and of the garbage collector: { classicText, nativeProtobuf }.
 */
async function scrapeSideBySide (dirA, spreadA, formatA, dirB, spreadB, formatB) {
  const sets = [[dirA, spreadA, formatA], [dirB, spreadB, formatB]].map(([dir, spread, format]) => {
    const stores = []
    for (let w = 0; w < WORKERS; w++) stores.push(workerStore(dir, w, spread))
    return { dir, format, stores, times: [], bytes: 0 }
  })
  for (const set of sets) for (const s of set.stores) await s.flush(false)
  for (let i = 0; i < 2 * SCRAPES; i++) {
    for (const set of sets) {
      const t0 = process.hrtime.bigint()
      const body = await set.stores[i % WORKERS].renderBuffer(set.format)
      set.times.push(Number(process.hrtime.bigint() - t0) / 1e6)
      set.bytes = body.length
    }
  }
  const out = sets.map((set) => ({
    format: set.format,
    fileBytesPerWorker: Math.round(median(readdirSync(set.dir).filter((n) => n.startsWith('fnm-')).map((n) => statSync(join(set.dir, n)).size))),
    exposedBytes: set.bytes,
    medianMs: round3(median(set.times)),
    minMs: round3(Math.min(...set.times)),
    maxMs: round3(Math.max(...set.times))
  }))
  for (const set of sets) for (const s of set.stores) await s.release()
  return { classicText: out[0], nativeProtobuf: out[1] }
}

/**
 * The extra work of multiprocess mode, measured directly: a request does exactly the same work in
 * both modes (the families are the same objects), and the only addition is the timer's flush of
 * the snapshot file, once per interval. CPU per flush (this thread and libuv's, from
 * process.cpuUsage()) over the interval is the share of one core it takes.
 */
async function flushCost (dir, spread) {
  const store = workerStore(dir, 0, spread)
  for (let i = 0; i < 10; i++) await store.flush(false) // warm-up
  const cpuMs = []
  const wallMs = []
  for (let i = 0; i < 51; i++) {
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    await store.flush(false)
    store.maintain() // what the timer does after each flush
    wallMs.push(Number(process.hrtime.bigint() - t0) / 1e6)
    const c = process.cpuUsage(c0)
    cpuMs.push((c.user + c.system) / 1000)
  }
  await store.release()
  const intervalMs = 1000
  return {
    labelSets: SERIES,
    flushIntervalMs: intervalMs,
    cpuMsPerFlush: round3(median(cpuMs)),
    wallMsPerFlush: round3(median(wallMs)),
    shareOfOneCorePct: round3((median(cpuMs) / intervalMs) * 100)
  }
}

async function main () {
  const dirT = mkdtempSync(join(os.tmpdir(), 'fnm-bench-mp-'))
  const dirS = mkdtempSync(join(os.tmpdir(), 'fnm-bench-mp-'))
  const dirF = mkdtempSync(join(os.tmpdir(), 'fnm-bench-mp-'))
  try {
    const scrape = await scrapeTime(dirS)
    const dirN = [0, 1, 2].map(() => mkdtempSync(join(os.tmpdir(), 'fnm-bench-mp-')))
    let native
    try {
      const spreadClassic = { native: false, observations: 10 }
      const spreadNative = { native: true, observations: 10 }
      native = {
        observationsPerSeries: 10,
        ...await scrapeSideBySide(dirN[0], spreadClassic, 'prometheus', dirN[1], spreadNative, 'protobuf'),
        flushClassic: await flushCost(mkdtempSync(join(dirN[2], 'c-')), spreadClassic),
        flushNative: await flushCost(mkdtempSync(join(dirN[2], 'n-')), spreadNative)
      }
    } finally {
      for (const d of dirN) rmSync(d, { recursive: true, force: true, maxRetries: 50 })
    }
    console.log(`native histograms, ${WORKERS} workers x ${SERIES} label sets, 10 observations per series: scrape ${native.nativeProtobuf.medianMs} ms [${native.nativeProtobuf.minMs}, ${native.nativeProtobuf.maxMs}] in protobuf with native buckets vs ${native.classicText.medianMs} ms [${native.classicText.minMs}, ${native.classicText.maxMs}] in text, classic only; file ${native.nativeProtobuf.fileBytesPerWorker} B vs ${native.classicText.fileBytesPerWorker} B per worker; flush ${native.flushNative.cpuMsPerFlush} ms vs ${native.flushClassic.cpuMsPerFlush} ms CPU (${native.flushNative.shareOfOneCorePct}% vs ${native.flushClassic.shareOfOneCorePct}% of one core)`)
    console.log(`scrape aggregating ${WORKERS} workers x ${SERIES} label sets (counter + histogram): median ${scrape.medianMs} ms [${scrape.minMs}, ${scrape.maxMs}] (goal < 100 ms); single-process render of one worker's registry: ${scrape.singleProcessRenderMedianMs} ms; file ${scrape.fileBytesPerWorker} B per worker`)
    const flush = await flushCost(dirF)
    console.log(`flush of ${flush.labelSets} label sets every ${flush.flushIntervalMs} ms: ${flush.cpuMsPerFlush} ms CPU (${flush.wallMsPerFlush} ms wall) per flush => ${flush.shareOfOneCorePct}% of one core, the whole extra work of multiprocess mode (goal < 3%)`)
    const tp = await throughput(dirT)
    console.log(`throughput: single ${tp.medianRps.single}/s, multi ${tp.medianRps.multi}/s; multi/single median ${tp.multiVsSingle.median} [${tp.multiVsSingle.min}, ${tp.multiVsSingle.max}] => extra cost per request ${tp.extraCostPerRequestPct}% (goal < 3%)`)
    const result = {
      date: new Date().toISOString(),
      machine: { ...machine(), loadavg: os.loadavg().map(round3) },
      method: { rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, route: 'GET /item/:id (small JSON)', extraLabelSetsPerServer: SERIES, flushIntervalMs: 1000, scrapes: SCRAPES },
      throughput: tp,
      flush,
      scrape,
      native
    }
    mkdirSync(join(__dirname, 'results'), { recursive: true })
    writeFileSync(join(__dirname, 'results', 'multiprocess.json'), JSON.stringify(result, null, 2) + '\n')
  } finally {
    rmSync(dirT, { recursive: true, force: true, maxRetries: 50 })
    rmSync(dirS, { recursive: true, force: true, maxRetries: 50 })
    rmSync(dirF, { recursive: true, force: true, maxRetries: 50 })
  }
}

module.exports = { workerStore }
if (process.env.ROLE === 'server') server().catch((err) => { console.error(err); process.exit(1) })
else if (require.main === module) main().catch((err) => { console.error(err); process.exit(1) })
