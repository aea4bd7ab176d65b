'use strict'
/**
 * HTTP hot-path benchmark: bare Fastify vs this plugin (defaults, every HTTP family on) vs
 * fastify-metrics (defaults) vs the "floor" (one empty onRequest hook with two clock reads, the end
 * seen from Node's finish channel: the least any plugin timing every request does), side by side
 * in one run.
 * Each server is pinned to CPU 0 and the load generator (wrk, else autocannon) to CPU 1; rounds
 * alternate the order of the servers; ratios are taken pair by pair within a round, then the
 * median and spread are reported.
 *
 *   node bench/http.js [--rounds 11] [--seconds 3] [--connections 32] [--routes N]
 *   BENCH_MODES=bare,plugin,... picks the servers (see bench/server.js); BENCH_OUT names the JSON.
 */
const { writeFileSync, mkdirSync } = require('node:fs')
const { join, isAbsolute, dirname } = require('node:path')
const { load: loadRun, machine, median, opt, startServer, stats, summary } = require('./common')

const ROUNDS = opt('rounds', 11)
const SECONDS = opt('seconds', 3)
const CONNECTIONS = opt('connections', 32)
const MODES = (process.env.BENCH_MODES || 'bare,plugin,fastify-metrics,floor').split(',')
const EXTRA_ROUTES = opt('routes', 0)
const OUT = process.env.BENCH_OUT || 'http.json'

const start = (mode, port) => startServer(join(__dirname, 'server.js'), { ...process.env, MODE: mode, PORT: String(port), EXTRA_ROUTES: String(EXTRA_ROUTES) })

const load = (port, seconds) => loadRun(port, seconds, CONNECTIONS)

async function measure (server, seconds) {
  const before = await stats(server.child)
  const r = load(server.port, seconds)
  const after = await stats(server.child)
  const cpuUs = (after.cpu.user + after.cpu.system) - (before.cpu.user + before.cpu.system)
  r.cpuNsPerRequest = (cpuUs * 1000) / Math.max(1, after.served - before.served)
  return r
}

async function main () {
  const servers = {}
  let port = 40100
  for (const mode of MODES) servers[mode] = { port: port++, child: await start(mode, port - 1) }
  try {
    for (const mode of MODES) load(servers[mode].port, 1) // warm-up
    const rounds = []
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? MODES : [...MODES].reverse()
      const round = {}
      for (const mode of order) round[mode] = await measure(servers[mode], SECONDS)
      rounds.push(round)
      process.stderr.write(`round ${r + 1}/${ROUNDS}: ${MODES.map((m) => `${m} ${Math.round(round[m].rps)}/s`).join(', ')}\n`)
    }
    const ratio = (a, b) => rounds.map((r) => r[a].rps / r[b].rps)
    const p99ratio = (a, b) => rounds.map((r) => r[a].p99ms / r[b].p99ms)
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      method: { rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, route: 'GET /item/:id (small JSON)', extraRoutes: EXTRA_ROUTES },
      medianRps: Object.fromEntries(MODES.map((m) => [m, Math.round(median(rounds.map((r) => r[m].rps)))])),
      medianP99ms: Object.fromEntries(MODES.map((m) => [m, median(rounds.map((r) => r[m].p99ms))])),
      medianCpuNsPerRequest: Object.fromEntries(MODES.map((m) => [m, Math.round(median(rounds.map((r) => r[m].cpuNsPerRequest)))])),
      // Every server against bare Fastify, pair by pair within a round: throughput ratio and the
      // CPU it spends per request above bare Fastify's.
      vsBare: Object.fromEntries(MODES.filter((m) => m !== 'bare').map((m) => [m, { throughput: summary(ratio(m, 'bare')), cpuNsPerRequest: summary(rounds.map((r) => r[m].cpuNsPerRequest - r.bare.cpuNsPerRequest)) }])),
      // The plugin against the other servers, pair by pair within a round.
      ...(MODES.includes('plugin') ? {
        ratios: {
          ...(MODES.includes('fastify-metrics') ? { pluginVsFastifyMetrics: summary(ratio('plugin', 'fastify-metrics')) } : {}),
          ...(MODES.includes('floor') ? { pluginVsFloor: summary(ratio('plugin', 'floor')) } : {}),
          pluginP99VsBare: summary(p99ratio('plugin', 'bare'))
        }
      } : {}),
      rounds
    }
    const outPath = isAbsolute(OUT) ? OUT : join(__dirname, 'results', OUT)
    mkdirSync(dirname(outPath), { recursive: true })
    writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n')
    if (!MODES.includes('plugin')) {
      for (const [m, v] of Object.entries(result.vsBare)) console.log(`${m}: throughput ${fmt(v.throughput)} of bare, CPU +${v.cpuNsPerRequest.median} ns/request`)
      return
    }
    console.log('| server | median req/s | throughput ratio to bare, median [min, max] | median p99 ms | CPU ns/request |')
    console.log('|---|---|---|---|---|')
    console.log(`| bare Fastify | ${result.medianRps.bare} | 1.000 | ${result.medianP99ms.bare} | ${result.medianCpuNsPerRequest.bare} |`)
    console.log(`| fastify-netbox-metrics | ${result.medianRps.plugin} | ${fmt(result.vsBare.plugin.throughput)} | ${result.medianP99ms.plugin} | ${result.medianCpuNsPerRequest.plugin} |`)
    if (MODES.includes('floor')) {
      console.log(`| floor (one empty hook, two clock reads, the end from the finish channel) | ${result.medianRps.floor} | ${fmt(result.vsBare.floor.throughput)} | ${result.medianP99ms.floor} | ${result.medianCpuNsPerRequest.floor} |`)
    }
    if (MODES.includes('fastify-metrics')) {
      console.log(`| fastify-metrics | ${result.medianRps['fastify-metrics']} | ${fmt(result.vsBare['fastify-metrics'].throughput)} | ${result.medianP99ms['fastify-metrics']} | ${result.medianCpuNsPerRequest['fastify-metrics']} |`)
      console.log(`\nthis plugin vs fastify-metrics (throughput): ${fmt(result.ratios.pluginVsFastifyMetrics)}x`)
    }
    console.log(`this plugin's p99 vs bare: ${fmt(result.ratios.pluginP99VsBare)}x`)
    const cost = result.vsBare.plugin.cpuNsPerRequest
    console.log(`this plugin's own CPU cost per request: ${cost.median} ns [${cost.min}, ${cost.max}]`)
  } finally {
    for (const mode of MODES) servers[mode].child.kill()
  }
}

function fmt (s) { return `${s.median.toFixed(3)} [${s.min.toFixed(3)}, ${s.max.toFixed(3)}]` }

main().catch((err) => { console.error(err); process.exit(1) })
