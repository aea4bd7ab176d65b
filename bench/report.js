'use strict'
// Writes the latest benchmark tables (bench/results/*.json) into docs/performance.md, between
// the bench:start and bench:end markers, so the page always shows the numbers of the last run.
const { existsSync, readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const results = join(__dirname, 'results')
const read = (name) => { const p = join(results, `${name}.json`); return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null }
const f3 = (s) => `${s.median.toFixed(3)} [${s.min.toFixed(3)}, ${s.max.toFixed(3)}]`
const lines = []

const http = read('http')
if (http) {
  lines.push(`### HTTP hot path (${http.date.slice(0, 10)}, Node ${http.machine.node}, ${http.machine.cpus} CPUs ${http.machine.model ?? ''}, ${http.machine.loadTool}, ${http.method.rounds} alternating rounds of ${http.method.seconds} s, ${http.method.connections} connections, servers pinned to CPU 0 and the load to CPU 1: ${http.machine.pinned})`, '')
  lines.push('| server | median req/s | throughput / bare, median [min, max] | median p99 ms | CPU ns per request |', '|---|---|---|---|---|')
  lines.push(`| bare Fastify | ${http.medianRps.bare} | 1.000 | ${http.medianP99ms.bare} | ${http.medianCpuNsPerRequest.bare} |`)
  lines.push(`| fastify-netbox-metrics (defaults: every HTTP family, default metrics) | ${http.medianRps.plugin} | ${f3(http.vsBare.plugin.throughput)} | ${http.medianP99ms.plugin} | ${http.medianCpuNsPerRequest.plugin} |`)
  if (http.vsBare.floor) lines.push(`| floor: one empty \`onRequest\` hook, two clock reads, the end seen from Node's finish channel | ${http.medianRps.floor} | ${f3(http.vsBare.floor.throughput)} | ${http.medianP99ms.floor} | ${http.medianCpuNsPerRequest.floor} |`)
  if (http.vsBare['fastify-metrics']) lines.push(`| fastify-metrics 14.1 (defaults) | ${http.medianRps['fastify-metrics']} | ${f3(http.vsBare['fastify-metrics'].throughput)} | ${http.medianP99ms['fastify-metrics']} | ${http.medianCpuNsPerRequest['fastify-metrics']} |`)
  lines.push('')
  if (http.ratios.pluginVsFastifyMetrics) lines.push(`- this plugin vs fastify-metrics, throughput: **${f3(http.ratios.pluginVsFastifyMetrics)}x**`)
  if (http.ratios.pluginVsFloor) lines.push(`- this plugin vs the floor, throughput: ${f3(http.ratios.pluginVsFloor)}x`)
  lines.push(`- this plugin's p99 vs bare: ${f3(http.ratios.pluginP99VsBare)}x`)
  const cost = http.vsBare.plugin.cpuNsPerRequest
  lines.push(`- this plugin's own CPU per request (plugin minus bare, pair by pair): median ${Math.round(cost.median)} ns [${Math.round(cost.min)}, ${Math.round(cost.max)}]`, '')
}
const paired = read('paired')
if (paired) {
  lines.push(`### HTTP hot path, same core at the same time (${paired.date.slice(0, 10)}, \`node bench/paired.js\`: ${paired.method.rounds} rounds, each a fresh bare Fastify and a fresh other server side by side on CPU 0 for ${paired.method.seconds} s after a warm-up, each under its own wrk on CPU 1)`, '')
  lines.push('| server | throughput / bare (bare\'s CPU per request over its), median [min, max] | CPU ns per request above bare: all, user, system |', '|---|---|---|')
  const names = { bare: 'bare Fastify (control: the method\'s own error)', plugin: 'fastify-netbox-metrics (defaults)', floor: 'floor: one empty `onRequest` hook, two clock reads, the finish channel', 'floor-nohook': 'floor without a Fastify hook: the start from Node\'s request-start channel', 'fastify-metrics': 'fastify-metrics 14.1 (defaults)', 'plugin-native': 'fastify-netbox-metrics with `nativeHistograms: true` (native buckets beside the classic ones)' }
  // plugin@<dir> pairs compare another build (a change's before and after) and are not part of the docs.
  for (const [k, p] of Object.entries(paired.pairs)) if (!k.includes('@')) lines.push(`| ${names[k] ?? k} | ${f3(p.throughputVsBare)} | ${p.nsPerRequestOverBare}, ${p.userNsOverBare}, ${p.systemNsOverBare} |`)
  lines.push('')
  if (paired.pluginVsFastifyMetrics) lines.push(`- this plugin vs fastify-metrics (ratio of their ratios to bare): **${paired.pluginVsFastifyMetrics.toFixed(3)}x**`)
  if (paired.pairs.plugin) lines.push(`- bare Fastify's CPU per request in these pairs: ${paired.pairs.plugin.bareNsPerRequest} ns (median)`)
  lines.push('')
}
if (http || paired) lines.push('![throughput chart](images/throughput.svg)', '')
const latency = read('latency')
if (latency) {
  lines.push(`### Latency at light load (${latency.date.slice(0, 10)}, \`node bench/latency.js\`: ${latency.method})`, '')
  lines.push('| server | p50 µs | p99 µs | p99.9 µs | p50 / bare | p99 / bare | p99.9 / bare |', '|---|---:|---:|---:|---:|---:|---:|')
  for (const [k, s] of Object.entries(latency.servers)) lines.push(`| ${k} | ${s.p50us} | ${s.p99us} | ${s.p999us} | ${s.p50VsBare?.median.toFixed(3) ?? '1'} | ${s.p99VsBare ? f3(s.p99VsBare) : '1'} | ${s.p999VsBare?.median.toFixed(3) ?? '1'} |`)
  lines.push('', 'Ratios are taken round by round (each round\'s own bare), then the median and, for p99, the spread over rounds.', '')
}
const instructions = read('instructions')
if (instructions) {
  lines.push(`### Instructions per request (${instructions.date}, \`node bench/instructions.js\`: valgrind's callgrind, main thread, ${instructions.requests} requests after ${instructions.warmup} of warm-up, ${instructions.connections} keep-alive connections)`, '')
  lines.push('| server | instructions per request | above bare | ratio to bare |', '|---|---:|---:|---:|')
  for (const [k, n] of Object.entries(instructions.perRequest)) lines.push(`| ${k} | ${n} | ${instructions.overBare[k] ?? ''} | ${instructions.ratioToBare[k]?.toFixed(3) ?? ''} |`)
  lines.push('', 'The same count for the same code whatever the machine is doing (two runs differ by about 0.3%); user-space instructions only, so the kernel\'s share of a request (reading and writing the socket) is left out, and an instruction that misses a cache costs more than one that does not.', '')
}
const profile = read('profile')
if (profile) {
  const { bare, plugin } = profile.results
  lines.push(`### Where the CPU goes (\`node --cpu-prof\`, ${profile.date.slice(0, 10)}, ${profile.method.seconds} s under wrk each, after a warm-up; \`node bench/profile.js\`)`, '')
  lines.push('Each sample belongs to the nearest frame from the leaf up that is this package, Fastify, the app or another dependency; shares of the busy (non-idle) CPU survive the VM\'s drift between the two runs, nanoseconds do not.', '')
  lines.push('| owner | bare: % of busy CPU | plugin: % of busy CPU |', '|---|---:|---:|')
  for (const o of Object.keys(plugin.busySharePctByOwner)) lines.push(`| ${o} | ${bare.busySharePctByOwner[o] ?? 0} | ${plugin.busySharePctByOwner[o]} |`)
  const ours = Object.entries(plugin.pluginNsPerRequestByFunction)
  const total = ours.reduce((s, [, v]) => s + v, 0)
  lines.push('', `This package's own time by function, share of its ${total} ns per request (profiler overhead included): ${ours.slice(0, 6).map(([k, v]) => `\`${k.split(' ')[0]}\` ${Math.round((v / total) * 100)}%`).join(', ')}.`, '')
}
const routes = read('routes')
if (routes) {
  lines.push('### Cost against the number of registered routes (same core at the same time, `bench/paired.js` with that many extra routes on both servers)', '', '| registered routes | plugin / bare throughput, median [min, max] | plugin CPU ns per request above bare |', '|---|---|---|')
  for (const r of routes.rows) lines.push(`| ${r.routes} | ${f3(r.ratio)} | ${Math.round(r.nsPerRequestOverBare)} |`)
  lines.push('')
}
const scrape = read('scrape')
if (scrape) {
  lines.push(`### Scrape of ${scrape.series.total} series (${scrape.series.counters} counter series, ${scrape.series.histogramLabelSets} histogram label sets; ${scrape.series.sampleLines} sample lines)`, '')
  lines.push('| renderer | median ms |', '|---|---|', `| fastify-netbox-metrics | ${scrape.medianMs.ours} |`, `| prom-client registry.metrics() | ${scrape.medianMs.promClient} |`, '')
  lines.push(`- ratio (ours / prom-client), pair by pair: **${scrape.ratio}**; same content: ${scrape.sameContent}`)
  lines.push(`- longest event-loop stall during our scrape: **${scrape.maxEventLoopStallMs} ms**`, '')
}
const memory = read('memory')
if (memory) {
  lines.push(`### Memory (${memory.requests} requests over ${memory.routes} routes, real HTTP)`, '')
  lines.push('| requests | heap after GC, MB |', '|---|---|')
  for (const p of memory.heapMB) lines.push(`| ${p.requests} | ${p.heapMB} |`)
  lines.push('', `Growth after warm-up: **${memory.growthAfterWarmupMB} MB**.`, '')
  lines.push('| series type | bytes per series, this package | bytes per series, prom-client |', '|---|---|---|')
  lines.push(`| counter | ${memory.bytesPerSeries.counter} | ${memory.bytesPerSeries.promClientCounter} |`, `| histogram (18 buckets) | ${memory.bytesPerSeries.histogram} | ${memory.bytesPerSeries.promClientHistogram} |`, '')
}
const orm = read('orm')
if (orm) {
  lines.push(`### MikroORM (${orm.date.slice(0, 10)})`, '', '| case | bare median ms | instrumented median ms | overhead | per operation µs |', '|---|---|---|---|---|')
  for (const [name, r] of Object.entries(orm.results)) lines.push(`| ${name} (${r.operations} operations) | ${r.medianMs.bare} | ${r.medianMs.instrumented} | ${r.overheadPct}% | ${r.perOperationUs} |`)
  if (orm.flushDirect) lines.push('', `Flush of 10,000 entities measured directly: ${orm.flushDirect.subscriberMsPerFlush} ms in the subscriber + ${orm.flushDirect.statementsPerFlush} statements x the per-statement cost = **${orm.flushDirect.estimatedOverheadMs} ms (${orm.flushDirect.estimatedOverheadPct}%)**. The \`executeStub\` row (database call stubbed out) is the per-statement client-side cost; the end-to-end rows are within the machine's noise.`)
  lines.push('')
}
const mp = read('multiprocess')
if (mp) {
  lines.push(`### Several processes (${mp.date.slice(0, 10)})`, '')
  lines.push(`- scrape aggregating ${mp.scrape.workers} workers x ${mp.scrape.seriesPerWorker.http_requests_total} label sets (a counter and a histogram each): median **${mp.scrape.medianMs} ms** [${mp.scrape.minMs}, ${mp.scrape.maxMs}] (one registry alone: ${mp.scrape.singleProcessRenderMedianMs} ms; ${mp.scrape.fileBytesPerWorker} bytes per worker file)`)
  if (mp.flush) lines.push(`- the extra work of multi-process mode, measured directly: one flush of ${mp.flush.labelSets} label sets takes **${mp.flush.cpuMsPerFlush} ms** of CPU (${mp.flush.wallMsPerFlush} ms wall) every ${mp.flush.flushIntervalMs} ms: **${mp.flush.shareOfOneCorePct}%** of one core. A request does the same work in both modes.`)
  lines.push(`- throughput, multi-process mode / single-process mode: median ${f3(mp.throughput.multiVsSingle)} (extra cost per request ${mp.throughput.extraCostPerRequestPct}%)`, '')
}

const page = join(__dirname, '..', 'docs', 'performance.md')
const text = readFileSync(page, 'utf8')
const start = text.indexOf('<!-- bench:start -->')
const end = text.indexOf('<!-- bench:end -->')
if (start === -1 || end === -1) throw new Error('docs/performance.md has no bench markers')
writeFileSync(page, `${text.slice(0, start)}<!-- bench:start -->\n${lines.join('\n')}\n${text.slice(end)}`)
console.log('updated docs/performance.md')
