'use strict'
/**
 * HTTP hot-path benchmark: bare Fastify vs this plugin (defaults, every HTTP family on) vs
 * fastify-metrics (defaults) vs the "floor" (one empty onRequest hook with two clock reads and a
 * 'close' listener: the least any plugin timing every request does), side by side in one run.
 * Each server is pinned to CPU 0 and the load generator (wrk, else autocannon) to CPU 1; rounds
 * alternate the order of the servers; ratios are taken pair by pair within a round, then the
 * median and spread are reported.
 *
 *   node bench/http.js [--rounds 11] [--seconds 3] [--connections 32] [--routes N]
 *   BENCH_MODES=bare,plugin,... picks the servers (see bench/server.js); BENCH_OUT names the JSON.
 */
const { fork, execFileSync, spawnSync } = require('node:child_process')
const { writeFileSync, mkdirSync } = require('node:fs')
const { join, isAbsolute, dirname } = require('node:path')
const os = require('node:os')

const args = process.argv.slice(2)
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i === -1 ? def : Number(args[i + 1]) }
const ROUNDS = opt('rounds', 11)
const SECONDS = opt('seconds', 3)
const CONNECTIONS = opt('connections', 32)
const MODES = (process.env.BENCH_MODES || 'bare,plugin,fastify-metrics,floor').split(',')
const EXTRA_ROUTES = opt('routes', 0)
const OUT = process.env.BENCH_OUT || 'http.json'

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const useTaskset = has('taskset') && os.cpus().length >= 2
const useWrk = has('wrk')

function startServer (mode, port) {
  return new Promise((resolve, reject) => {
    const execArgv = []
    const child = useTaskset
      ? fork(join(__dirname, 'server.js'), [], { env: { ...process.env, MODE: mode, PORT: String(port), EXTRA_ROUTES: String(EXTRA_ROUTES) }, execPath: 'taskset', execArgv: ['-c', '0', process.execPath, ...execArgv] })
      : fork(join(__dirname, 'server.js'), [], { env: { ...process.env, MODE: mode, PORT: String(port), EXTRA_ROUTES: String(EXTRA_ROUTES) } })
    child.once('message', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`${mode} server exited ${code}`)))
  })
}

function stats (child) {
  return new Promise((resolve) => { child.once('message', resolve); child.send('stats') })
}

async function measure (server, seconds) {
  const before = await stats(server.child)
  const r = load(server.port, seconds)
  const after = await stats(server.child)
  const cpuUs = (after.cpu.user + after.cpu.system) - (before.cpu.user + before.cpu.system)
  r.cpuNsPerRequest = (cpuUs * 1000) / Math.max(1, after.served - before.served)
  return r
}

function load (port, seconds) {
  const url = `http://127.0.0.1:${port}/item/42`
  if (useWrk) {
    const cmd = [...(useTaskset ? ['taskset', '-c', '1'] : []), 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url]
    const out = execFileSync(cmd[0], cmd.slice(1)).toString()
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])
    const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
    const p99ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN
    return { rps, p99ms }
  }
  const out = execFileSync(process.execPath, [require.resolve('autocannon/autocannon.js'), '-j', '-c', String(CONNECTIONS), '-d', String(seconds), url]).toString()
  const r = JSON.parse(out)
  return { rps: r.requests.average, p99ms: r.latency.p99 }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

async function main () {
  const servers = {}
  let port = 40100
  for (const mode of MODES) servers[mode] = { port: port++, child: await startServer(mode, port - 1) }
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
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, pinned: useTaskset, loadTool: useWrk ? 'wrk' : 'autocannon' },
      method: { rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, route: 'GET /item/:id (small JSON)', extraRoutes: EXTRA_ROUTES },
      medianRps: Object.fromEntries(MODES.map((m) => [m, Math.round(median(rounds.map((r) => r[m].rps)))])),
      medianP99ms: Object.fromEntries(MODES.map((m) => [m, median(rounds.map((r) => r[m].p99ms))])),
      medianCpuNsPerRequest: Object.fromEntries(MODES.map((m) => [m, Math.round(median(rounds.map((r) => r[m].cpuNsPerRequest)))])),
      // Every server against bare Fastify, pair by pair within a round: throughput ratio and the
      // CPU it spends per request above bare Fastify's.
      vsBare: Object.fromEntries(MODES.filter((m) => m !== 'bare').map((m) => [m, { throughput: summary(ratio(m, 'bare')), cpuNsPerRequest: summary(rounds.map((r) => r[m].cpuNsPerRequest - r.bare.cpuNsPerRequest)) }])),
      ...(MODES.includes('plugin') ? {
        // The plugin's own cost: CPU per request above bare Fastify's, pair by pair within a round.
        pluginCostNsPerRequest: summary(rounds.map((r) => r.plugin.cpuNsPerRequest - r.bare.cpuNsPerRequest)),
        ratios: {
          pluginVsBare: summary(ratio('plugin', 'bare')),
          ...(MODES.includes('fastify-metrics') ? { fastifyMetricsVsBare: summary(ratio('fastify-metrics', 'bare')), pluginVsFastifyMetrics: summary(ratio('plugin', 'fastify-metrics')) } : {}),
          ...(MODES.includes('floor') ? { floorVsBare: summary(ratio('floor', 'bare')), pluginVsFloor: summary(ratio('plugin', 'floor')) } : {}),
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
    console.log(`| fastify-netbox-metrics | ${result.medianRps.plugin} | ${fmt(result.ratios.pluginVsBare)} | ${result.medianP99ms.plugin} | ${result.medianCpuNsPerRequest.plugin} |`)
    if (MODES.includes('floor')) {
      console.log(`| floor (one empty hook, two clock reads, one close listener) | ${result.medianRps.floor} | ${fmt(result.ratios.floorVsBare)} | ${result.medianP99ms.floor} | ${result.medianCpuNsPerRequest.floor} |`)
    }
    if (MODES.includes('fastify-metrics')) {
      console.log(`| fastify-metrics | ${result.medianRps['fastify-metrics']} | ${fmt(result.ratios.fastifyMetricsVsBare)} | ${result.medianP99ms['fastify-metrics']} | ${result.medianCpuNsPerRequest['fastify-metrics']} |`)
      console.log(`\nthis plugin vs fastify-metrics (throughput): ${fmt(result.ratios.pluginVsFastifyMetrics)}x`)
    }
    console.log(`this plugin's p99 vs bare: ${fmt(result.ratios.pluginP99VsBare)}x`)
    console.log(`this plugin's own CPU cost per request: ${result.pluginCostNsPerRequest.median} ns [${result.pluginCostNsPerRequest.min}, ${result.pluginCostNsPerRequest.max}]`)
  } finally {
    for (const mode of MODES) servers[mode].child.kill()
  }
}

function summary (xs) { return { median: round3(median(xs)), min: round3(Math.min(...xs)), max: round3(Math.max(...xs)) } }
function round3 (x) { return Math.round(x * 1000) / 1000 }
function fmt (s) { return `${s.median.toFixed(3)} [${s.min.toFixed(3)}, ${s.max.toFixed(3)}]` }

main().catch((err) => { console.error(err); process.exit(1) })
