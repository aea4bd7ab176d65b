'use strict'
/**
 * Memory: heap after a forced GC at checkpoints across 1,000,000 requests spread over 1,000
 * routes (flat after warm-up means no per-request leak), and bytes per series of each family type.
 * Run with --expose-gc (bench/run.js does).  MEMORY_REQUESTS overrides the request count.
 */
const Fastify = require('fastify')
const { writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')
const client = require('prom-client')
const { Worker } = require('node:worker_threads')
const { CounterFamily, HistogramFamily } = require('../dist/lib/families')
const { DEFAULT_LATENCY_BUCKETS } = require('../dist/lib/metrics')
const { ExpositionWriter } = require('../dist/lib/writer')

const REQUESTS = Number(process.env.MEMORY_REQUESTS || 1_000_000)
const ROUTES = 1000
const CHECKPOINTS = 10

function heapMB () {
  global.gc()
  global.gc()
  return process.memoryUsage().heapUsed / 1048576
}

function bytesPerSeries (make) {
  const n = 20000
  const before = (global.gc(), process.memoryUsage().heapUsed)
  const family = make()
  for (let i = 0; i < n; i++) family.child('GET', `/api/route-${i}/:id`, '200')
  // Steady state: after a scrape, our series also hold their label bytes.
  if (family.renderSamples) family.renderSamples(new ExpositionWriter(), 'x')
  const after = (global.gc(), process.memoryUsage().heapUsed)
  family.reset()
  return Math.round((after - before) / n)
}

// Sends `count` GET requests numbered from `start` over 32 keep-alive sockets from a worker thread.
function drive (port, start, count) {
  const code = `
    const net = require('node:net'); const { parentPort, workerData: w } = require('node:worker_threads')
    let next = w.start; const end = w.start + w.count; let open = 0
    for (let c = 0; c < 32; c++) {
      open++
      const s = net.connect(w.port, '127.0.0.1'); let buf = ''
      const send = () => { if (next >= end) { s.end(); return } const n = next++; s.write('GET /r' + (n % w.routes) + '/' + n + ' HTTP/1.1\\r\\nHost: m\\r\\n\\r\\n') }
      s.on('connect', send)
      s.on('data', (d) => { buf += d; for (;;) { const e = buf.indexOf('\\r\\n\\r\\n'); if (e === -1) return; const m = /content-length: (\\d+)/i.exec(buf.slice(0, e)); const len = m ? Number(m[1]) : 0; if (buf.length < e + 4 + len) return; buf = buf.slice(e + 4 + len); send() } })
      s.on('close', () => { if (--open === 0) parentPort.postMessage('done') })
    }`
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { port, start, count, routes: ROUTES } })
    worker.once('message', resolve)
    worker.once('error', reject)
  })
}

async function main () {
  if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc')
  // Real HTTP on keep-alive sockets: app.inject() retains memory by itself (bare Fastify grows
  // about 9 KB per injected request here), which would hide what the plugin does.
  const app = Fastify({ logger: false, keepAliveTimeout: 60_000 })
  await app.register(require('..'), { enabled: true, defaultMetrics: false })
  for (let i = 0; i < ROUTES; i++) app.get(`/r${i}/:id`, async (request) => ({ id: request.params.id }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = app.server.address().port
  const points = []
  const step = REQUESTS / CHECKPOINTS
  for (let c = 0; c < CHECKPOINTS; c++) {
    await drive(port, c * step, step)
    points.push({ requests: (c + 1) * step, heapMB: Math.round(heapMB() * 10) / 10 })
    process.stderr.write(`${(c + 1) * step} requests: heap ${points[points.length - 1].heapMB} MB\n`)
  }
  await app.close()
  const labelNames = ['method', 'route', 'status_code']
  const warm = points[1].heapMB
  const result = {
    date: new Date().toISOString(),
    requests: REQUESTS,
    routes: ROUTES,
    heapMB: points,
    growthAfterWarmupMB: Math.round((points[points.length - 1].heapMB - warm) * 10) / 10,
    bytesPerSeries: {
      counter: bytesPerSeries(() => new CounterFamily({ name: 'c_total', help: 'c', labelNames })),
      histogram: bytesPerSeries(() => new HistogramFamily({ name: 'h', help: 'h', labelNames, buckets: DEFAULT_LATENCY_BUCKETS })),
      promClientCounter: bytesPerSeries(() => {
        const c = new client.Counter({ name: 'pc_total', help: 'c', labelNames, registers: [] })
        return { child: (...v) => c.inc({ method: v[0], route: v[1], status_code: v[2] }), reset: () => c.reset() }
      }),
      promClientHistogram: bytesPerSeries(() => {
        const h = new client.Histogram({ name: 'ph', help: 'h', labelNames, buckets: [...DEFAULT_LATENCY_BUCKETS], registers: [] })
        return { child: (...v) => h.observe({ method: v[0], route: v[1], status_code: v[2] }, 0.01), reset: () => h.reset() }
      })
    }
  }
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'memory.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(`heap after warm-up (${points[1].requests} requests): ${warm} MB; after ${REQUESTS}: ${points[points.length - 1].heapMB} MB (growth ${result.growthAfterWarmupMB} MB)`)
  console.log('| series type | bytes per series (this package) | bytes per series (prom-client) |')
  console.log('|---|---|---|')
  console.log(`| counter | ${result.bytesPerSeries.counter} | ${result.bytesPerSeries.promClientCounter} |`)
  console.log(`| histogram (18 buckets) | ${result.bytesPerSeries.histogram} | ${result.bytesPerSeries.promClientHistogram} |`)
}
main().catch((err) => { console.error(err); process.exit(1) })
