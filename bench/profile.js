'use strict'
/**
 * Where the time of a request goes: bare Fastify and this plugin, each run under `node --cpu-prof`
 * while wrk loads it, and the profile turned into nanoseconds per request by owner. A sample
 * belongs to the nearest frame, from the leaf up, that is this package (dist/), Fastify, the
 * benchmark app or another dependency, so Node internals called by our code count as ours. Samples
 * with no such frame are grouped by what V8 calls them (idle, GC, program) or as Node internals.
 * Only the samples of the measured window count (after a warm-up, so start-up and compilation stay
 * out), divided by the requests served in it. The profiler's own cost (100 µs sampling) inflates
 * every row alike; compare rows, not these totals with bench/http.js.
 * Writes bench/results/profile.json.
 *
 *   node bench/profile.js [--seconds 8]
 */
const { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')
const { pathToFileURL } = require('node:url')
const os = require('node:os')
const { load, machine, opt, startServer, stats, stopServer } = require('./common')

const SECONDS = opt('seconds', 8)
const MODES = ['bare', 'plugin']

async function profileOf (mode, port) {
  const dir = mkdtempSync(join(os.tmpdir(), 'fnm-prof-'))
  const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval', '100']
  const env = { ...process.env, MODE: mode, PORT: String(port) }
  const child = await startServer(join(__dirname, 'server.js'), env, nodeArgs)
  load(port, 2) // warm-up: start-up and compilation stay out of the window below
  const before = await stats(child)
  load(port, SECONDS)
  const after = await stats(child)
  await stopServer(child, 'SIGINT')
  const file = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'))
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  rmSync(dir, { recursive: true, force: true })
  // Profile timestamps and process.hrtime() read the same monotonic clock (microseconds).
  const served = after.served - before.served
  return { served, ...attribute(profile, served, before.monotonicUs, after.monotonicUs) }
}

const OUR_BUILD = pathToFileURL(join(__dirname, '..', 'dist')).href + '/'
function ownerOfUrl (url) {
  if (url.startsWith(OUR_BUILD)) return 'fastify-netbox-metrics'
  if (url.includes('node_modules/fastify/lib/hooks.js')) return 'fastify hook runner'
  if (url.includes('node_modules/fastify/')) return 'fastify (and the Node work it calls: parsing, writing)'
  if (url.includes('/bench/')) return 'app (route handler)'
  if (url.includes('node_modules')) return 'other dependencies'
  return null
}

function attribute (profile, requests, fromUs, toUs) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const memo = new Map()
  const ownerOf = (id) => {
    if (memo.has(id)) return memo.get(id)
    let owner = null
    let fn = null
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame
      owner = ownerOfUrl(cf.url)
      if (owner !== null) { fn = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(node_modules\/)?/, '')}:${cf.lineNumber + 1}`; break }
    }
    if (owner === null) {
      const leaf = byId.get(id).callFrame.functionName
      owner = leaf === '(idle)' || leaf === '(garbage collector)' || leaf === '(program)' ? leaf : 'Node internals'
    }
    const r = [owner, fn]
    memo.set(id, r)
    return r
  }
  const owners = {}
  const ours = {}
  const deps = {}
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    if (t < fromUs || t > toUs) continue
    const [owner, fn] = ownerOf(profile.samples[i])
    const ns = ((profile.timeDeltas[i] ?? 0) * 1000) / requests
    owners[owner] = (owners[owner] ?? 0) + ns
    if (owner === 'fastify-netbox-metrics') ours[fn] = (ours[fn] ?? 0) + ns
    if (owner === 'other dependencies') deps[fn] = (deps[fn] ?? 0) + ns
  }
  const round = (o) => Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v)]))
  const busy = Object.entries(owners).filter(([k]) => k !== '(idle)').reduce((s, [, v]) => s + v, 0)
  // Shares of busy time survive the VM's drift between the two runs; nanoseconds do not.
  const share = Object.fromEntries(Object.entries(owners).filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round((v / busy) * 10000) / 100]))
  return { busyNsPerRequest: Math.round(busy), busySharePctByOwner: share, nsPerRequestByOwner: round(owners), pluginNsPerRequestByFunction: round(ours), otherDependenciesNsPerRequestByFunction: round(deps) }
}

async function main () {
  const results = {}
  let port = 40400
  for (const mode of MODES) results[mode] = await profileOf(mode, port++)
  const result = {
    date: new Date().toISOString(),
    machine: machine(),
    method: { seconds: SECONDS, samplingIntervalUs: 100, route: 'GET /item/:id (small JSON)' },
    results
  }
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'profile.json'), JSON.stringify(result, null, 2) + '\n')
  const owners = [...new Set(MODES.flatMap((m) => Object.keys(results[m].busySharePctByOwner)))]
  console.log(`| owner | ${MODES.map((m) => `${m}: % of busy CPU | ${m}: ns/request`).join(' | ')} |`)
  console.log(`|---|${MODES.map(() => '---:|---:').join('|')}|`)
  for (const o of owners) console.log(`| ${o} | ${MODES.map((m) => `${results[m].busySharePctByOwner[o] ?? 0} | ${results[m].nsPerRequestByOwner[o] ?? 0}`).join(' | ')} |`)
  console.log(`| busy (all but idle) | ${MODES.map((m) => `100 | ${results[m].busyNsPerRequest}`).join(' | ')} |`)
  console.log('\nthis package by function, ns/request:', Object.entries(results.plugin.pluginNsPerRequestByFunction).slice(0, 8).map(([k, v]) => `${k} ${v}`).join(', '))
}

main().catch((err) => { console.error(err); process.exit(1) })
