'use strict'
/**
 * Scrape cost at high cardinality: the same content (50,000 series: 30,000 counter series and
 * 20,000 histogram label sets) rendered by this package and by prom-client's registry.metrics(),
 * alternating rounds, medians; plus the longest event-loop stall while our scrape renders, and
 * the same 50,000 series rendered by this package as Prometheus text and as protobuf (the
 * histograms with native buckets too: SCRAPE_NATIVE=0 leaves them classic), bytes of each.
 */
const { performance, monitorEventLoopDelay } = require('node:perf_hooks')
const { writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')
const client = require('prom-client')
const { CounterFamily, HistogramFamily } = require('../dist/lib/families')
const { renderRegistry, renderRegistryBuffer } = require('../dist/lib/exposition')
const { DEFAULT_LATENCY_BUCKETS } = require('../dist/lib/metrics')
const { median } = require('./common')

const COUNTERS = Number(process.env.SCRAPE_COUNTERS || 30000)
const HISTOGRAMS = Number(process.env.SCRAPE_HISTOGRAMS || 20000)
const ROUNDS = Number(process.env.SCRAPE_ROUNDS || 7)
const NATIVE = process.env.SCRAPE_NATIVE !== '0'

const ours = new client.Registry()
const theirs = new client.Registry()
const labelNames = ['method', 'route', 'status_code']
const oc = new CounterFamily({ name: 'http_requests_total', help: 'Requests.', labelNames })
const oh = new HistogramFamily({ name: 'http_request_duration_seconds', help: 'Duration.', labelNames, buckets: DEFAULT_LATENCY_BUCKETS })
ours.registerMetric(oc)
ours.registerMetric(oh)
const pc = new client.Counter({ name: 'http_requests_total', help: 'Requests.', labelNames, registers: [theirs] })
const ph = new client.Histogram({ name: 'http_request_duration_seconds', help: 'Duration.', labelNames, buckets: [...DEFAULT_LATENCY_BUCKETS], registers: [theirs] })
for (let i = 0; i < COUNTERS; i++) {
  const labels = ['GET', `/api/r${i % 5000}/:id`, String(200 + (i / 5000 | 0))]
  oc.child(...labels).inc(i + 1)
  pc.inc({ method: labels[0], route: labels[1], status_code: labels[2] }, i + 1)
}
for (let i = 0; i < HISTOGRAMS; i++) {
  const labels = ['POST', `/api/h${i % 5000}/:id`, String(200 + (i / 5000 | 0))]
  const v = (i % 100) / 1000
  oh.child(...labels).observe(v)
  ph.observe({ method: labels[0], route: labels[1], status_code: labels[2] }, v)
}
// The same content in a registry of ours whose histograms also have native buckets, for the
// text-versus-protobuf comparison (the text exposition of both is the same).
const formats = new client.Registry()
const fc = new CounterFamily({ name: 'http_requests_total', help: 'Requests.', labelNames })
const native = NATIVE ? { bucketFactor: 1.1, schema: 3, maxBuckets: 160, zeroThreshold: 2 ** -128, classic: true } : null
const fh = new HistogramFamily({ name: 'http_request_duration_seconds', help: 'Duration.', labelNames, buckets: DEFAULT_LATENCY_BUCKETS, native })
formats.registerMetric(fc)
formats.registerMetric(fh)
for (let i = 0; i < COUNTERS; i++) fc.child('GET', `/api/r${i % 5000}/:id`, String(200 + (i / 5000 | 0))).inc(i + 1)
for (let i = 0; i < HISTOGRAMS; i++) {
  const s = fh.child('POST', `/api/h${i % 5000}/:id`, String(200 + (i / 5000 | 0)))
  // A few observations per series, spread over several native buckets.
  for (let j = 0; j < 5; j++) s.observe(((i + j * 37) % 100 + 1) / 1000)
}


async function main () {
  // Same content: the same set of sample lines.
  // Same content: the same samples, label order aside (prom-client puts `le` first).
  const normal = (text) => text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const m = /^([^{ ]+)(?:\{(.*)\})? (.*)$/.exec(l)
    const labels = m[2] ? m[2].match(/[a-z_]+="(?:[^"\\]|\\.)*"/g).sort().join(',') : ''
    return `${m[1]}{${labels}} ${m[3]}`
  }).sort()
  const a = normal(await renderRegistry(ours, 'prometheus'))
  const b = normal(await theirs.metrics())
  const same = a.length === b.length && a.every((l, i) => l === b[i])
  const oursMs = []
  const theirsMs = []
  const stalls = []
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']
    for (const who of order) {
      if (global.gc) global.gc()
      if (who === 'ours') {
        const h = monitorEventLoopDelay({ resolution: 1 })
        h.enable()
        const t0 = performance.now()
        // What the endpoint does: bytes, sent (or gzipped) as they are.
        await renderRegistryBuffer(ours, 'prometheus')
        oursMs.push(performance.now() - t0)
        h.disable()
        stalls.push(h.max / 1e6)
      } else {
        const t0 = performance.now()
        await theirs.metrics()
        theirsMs.push(performance.now() - t0)
      }
    }
  }
  // Text versus protobuf, the same series, alternating.
  const textMs = []
  const protoMs = []
  let textBytes = 0
  let protoBytes = 0
  for (let r = 0; r < ROUNDS; r++) {
    for (const format of r % 2 === 0 ? ['prometheus', 'protobuf'] : ['protobuf', 'prometheus']) {
      if (global.gc) global.gc()
      const t0 = performance.now()
      const body = await renderRegistryBuffer(formats, format)
      const ms = performance.now() - t0
      if (format === 'protobuf') {
        protoMs.push(ms)
        protoBytes = body.length
      } else {
        textMs.push(ms)
        textBytes = body.length
      }
    }
  }
  const result = {
    date: new Date().toISOString(),
    series: { counters: COUNTERS, histogramLabelSets: HISTOGRAMS, total: COUNTERS + HISTOGRAMS, sampleLines: a.length },
    sameContent: same,
    medianMs: { ours: Math.round(median(oursMs) * 10) / 10, promClient: Math.round(median(theirsMs) * 10) / 10 },
    ratio: Math.round(median(oursMs.map((x, i) => x / theirsMs[i])) * 1000) / 1000,
    maxEventLoopStallMs: Math.round(Math.max(...stalls) * 10) / 10,
    rounds: ROUNDS,
    formats: {
      nativeHistograms: NATIVE,
      medianMs: { text: Math.round(median(textMs) * 10) / 10, protobuf: Math.round(median(protoMs) * 10) / 10 },
      ratio: Math.round(median(protoMs.map((x, i) => x / textMs[i])) * 1000) / 1000,
      bytes: { text: textBytes, protobuf: protoBytes },
      bytesPerSeries: { text: Math.round(textBytes / (COUNTERS + HISTOGRAMS)), protobuf: Math.round(protoBytes / (COUNTERS + HISTOGRAMS)) }
    }
  }
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'scrape.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(`| scrape of ${result.series.total} series (${result.series.sampleLines} sample lines) | median ms |`)
  console.log('|---|---|')
  console.log(`| fastify-netbox-metrics | ${result.medianMs.ours} |`)
  console.log(`| prom-client registry.metrics() | ${result.medianMs.promClient} |`)
  console.log(`\nratio ours / prom-client: ${result.ratio}; same content: ${same}; longest event-loop stall during our scrape: ${result.maxEventLoopStallMs} ms`)
  const f = result.formats
  console.log(`\n| render of ${result.series.total} series${f.nativeHistograms ? ' (histograms with native buckets)' : ''} | median ms | bytes | bytes per series |`)
  console.log('|---|---|---|---|')
  console.log(`| Prometheus text | ${f.medianMs.text} | ${f.bytes.text} | ${f.bytesPerSeries.text} |`)
  console.log(`| protobuf | ${f.medianMs.protobuf} | ${f.bytes.protobuf} | ${f.bytesPerSeries.protobuf} |`)
  console.log(`\nratio protobuf / text: ${f.ratio}`)
}
main().catch((err) => { console.error(err); process.exit(1) })
