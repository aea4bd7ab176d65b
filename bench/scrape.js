'use strict'
/**
 * Scrape cost at high cardinality: the same content (50,000 series: 30,000 counter series and
 * 20,000 histogram label sets) rendered by this package and by prom-client's registry.metrics(),
 * alternating rounds, medians; plus the longest event-loop stall while our scrape renders.
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
  const result = {
    date: new Date().toISOString(),
    series: { counters: COUNTERS, histogramLabelSets: HISTOGRAMS, total: COUNTERS + HISTOGRAMS, sampleLines: a.length },
    sameContent: same,
    medianMs: { ours: Math.round(median(oursMs) * 10) / 10, promClient: Math.round(median(theirsMs) * 10) / 10 },
    ratio: Math.round(median(oursMs.map((x, i) => x / theirsMs[i])) * 1000) / 1000,
    maxEventLoopStallMs: Math.round(Math.max(...stalls) * 10) / 10,
    rounds: ROUNDS
  }
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'scrape.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(`| scrape of ${result.series.total} series (${result.series.sampleLines} sample lines) | median ms |`)
  console.log('|---|---|')
  console.log(`| fastify-netbox-metrics | ${result.medianMs.ours} |`)
  console.log(`| prom-client registry.metrics() | ${result.medianMs.promClient} |`)
  console.log(`\nratio ours / prom-client: ${result.ratio}; same content: ${same}; longest event-loop stall during our scrape: ${result.maxEventLoopStallMs} ms`)
}
main().catch((err) => { console.error(err); process.exit(1) })
