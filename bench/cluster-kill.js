'use strict'
/**
 * A/B of the node:cluster hang after a SIGKILL (docs/multiprocess.md, "A SIGKILLed worker and
 * node:cluster"): does the package make requests hang when a worker is SIGKILLed?
 *
 * Rounds alternate A (the package, multiprocess mode, default flush interval, scraped) and B
 * (the same Fastify app without it), same load and kill schedule, so a loaded machine weighs on
 * both alike. Each round: a node:cluster primary with WORKERS workers on a loopback port,
 * CONNS loops of GET /hello on fresh connections plus one GET /metrics loop (404 in B), and KILLS
 * SIGKILLs of a random worker every KILL_EVERY_MS (the primary starts a replacement). A request
 * that has no answer after HUNG_MS is a hung one (destroyed at that point). Prints every hung
 * request against the kills, and the totals of A and B. Bounded: ROUNDS x KILLS kills, loopback
 * only, stops by itself.
 *
 *   node bench/cluster-kill.js            ROUNDS=5 KILLS=10 (50 kills each side)
 *   FNM_DIST=/path/to/dist/lib/index.js   the build of the package to load in A (default ../dist)
 */
const cluster = require('node:cluster')
const http = require('node:http')
const { fork } = require('node:child_process')
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')

const ROLE = process.env.FNM_ROLE ?? 'parent'
const WORKERS = Number(process.env.WORKERS ?? 4)
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const KILLS = Number(process.env.KILLS ?? 10)
const KILL_EVERY_MS = Number(process.env.KILL_EVERY_MS ?? 1000)
const CONNS = Number(process.env.CONNS ?? 8)
const HUNG_MS = Number(process.env.HUNG_MS ?? 3000)

async function worker () {
  const Fastify = require('fastify')
  const app = Fastify({ logger: false })
  if (process.env.PKG === '1') {
    await app.register(require(process.env.FNM_DIST ?? '../dist/lib/index.js'), { enabled: true, multiprocess: { dir: process.env.MP_DIR } })
  }
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.send({ ready: true, port: app.server.address().port })
}

async function primary () {
  cluster.setupPrimary({ exec: __filename })
  const start = () => new Promise((resolve, reject) => {
    const w = cluster.fork({ FNM_ROLE: 'worker' })
    w.once('message', (m) => { if (m && m.ready) { w.port = m.port; resolve(w) } })
    w.once('exit', (code, signal) => reject(new Error(`worker exited early: ${code} ${signal}`)))
  })
  const workers = await Promise.all(Array.from({ length: WORKERS }, start))
  process.on('disconnect', () => { for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL'); process.exit(1) })
  process.on('message', async (m) => {
    if (m.cmd === 'kill') {
      const i = Math.floor(Math.random() * workers.length)
      const old = workers[i]
      const exited = new Promise((resolve) => old.once('exit', resolve))
      const at = Date.now()
      old.process.kill('SIGKILL')
      await exited
      workers[i] = await start()
      process.send({ id: m.id, at, pid: old.process.pid })
    } else if (m.cmd === 'stop') {
      for (const w of workers) w.process.kill('SIGKILL')
      process.send({ id: m.id }, () => process.exit(0))
    }
  })
  process.send({ ready: true, port: workers[0].port })
}

/** One GET on a fresh connection: { t0, t1, outcome: 'ok' | 'error' | 'hung', status }. */
function request (port, path) {
  return new Promise((resolve) => {
    const t0 = Date.now()
    let done = false
    const finish = (outcome, status) => { if (!done) { done = true; clearTimeout(timer); resolve({ path, t0, t1: Date.now(), outcome, status }) } }
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => finish('ok', res.statusCode))
      res.on('error', () => finish('error'))
    })
    req.on('error', () => finish('error'))
    const timer = setTimeout(() => { finish('hung'); req.destroy() }, HUNG_MS)
  })
}

async function round (pkg) {
  const dir = mkdtempSync(join(tmpdir(), 'fnm-ab-'))
  const child = fork(__filename, [], { env: { ...process.env, FNM_ROLE: 'primary', PKG: pkg ? '1' : '0', MP_DIR: dir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let seq = 0
  const rpc = (cmd) => new Promise((resolve) => {
    const id = ++seq
    const on = (m) => { if (m.id === id) { child.off('message', on); resolve(m) } }
    child.on('message', on)
    child.send({ ...cmd, id })
  })
  const { port } = await new Promise((resolve) => child.once('message', resolve))
  const results = []
  let running = true
  const loop = async (path, pauseMs) => {
    while (running) {
      results.push(await request(port, path))
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs))
    }
  }
  const loops = [...Array.from({ length: CONNS }, () => loop('/hello', 0)), loop('/metrics', 100)]
  const kills = []
  await new Promise((resolve) => setTimeout(resolve, 500))
  for (let k = 0; k < KILLS; k++) {
    await new Promise((resolve) => setTimeout(resolve, KILL_EVERY_MS))
    kills.push((await rpc({ cmd: 'kill' })).at)
  }
  await new Promise((resolve) => setTimeout(resolve, HUNG_MS + 500))
  running = false
  await Promise.all(loops)
  await rpc({ cmd: 'stop' })
  rmSync(dir, { recursive: true, force: true })
  return { pkg, kills, results }
}

async function parent () {
  const sides = { A: { kills: 0, requests: 0, errors: 0, hung: [] }, B: { kills: 0, requests: 0, errors: 0, hung: [] } }
  const t0 = Date.now()
  for (let r = 0; r < ROUNDS; r++) {
    for (const pkg of r % 2 === 0 ? [true, false] : [false, true]) {
      const { kills, results } = await round(pkg)
      const side = sides[pkg ? 'A' : 'B']
      side.kills += kills.length
      side.requests += results.length
      side.errors += results.filter((x) => x.outcome === 'error').length
      for (const h of results.filter((x) => x.outcome === 'hung')) {
        // The last kill at or before the request started, and the first after it.
        const before = kills.filter((k) => k <= h.t0).pop()
        const after = kills.find((k) => k > h.t0)
        const nearest = before === undefined ? after : after === undefined || h.t0 - before <= after - h.t0 ? before : after
        side.hung.push({ round: r, path: h.path, sinceKillMs: before === undefined ? null : h.t0 - before, untilKillMs: after === undefined ? null : after - h.t0, nearestMs: h.t0 - nearest })
      }
      console.log(`round ${r} ${pkg ? 'A (package)' : 'B (without)'}: ${kills.length} kills, ${results.length} requests, ${results.filter((x) => x.outcome === 'error').length} errors, ${results.filter((x) => x.outcome === 'hung').length} hung`)
    }
  }
  for (const [name, s] of Object.entries(sides)) {
    console.log(`${name}: ${s.kills} kills, ${s.requests} requests, ${s.errors} connection errors, ${s.hung.length} hung (>${HUNG_MS} ms)`)
    for (const h of s.hung) console.log(`  hung ${h.path}: started ${h.sinceKillMs} ms after a kill (next kill ${h.untilKillMs} ms later)`)
    const near = s.hung.map((h) => h.nearestMs).sort((x, y) => x - y)
    console.log(`  ${name}: hung requests by start time relative to the nearest kill (ms): min ${near[0]}, max ${near[near.length - 1]}, within 10 ms of a kill: ${near.filter((x) => Math.abs(x) <= 10).length} of ${near.length}`)
  }
  console.log(`${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${require('node:os').loadavg().map((x) => x.toFixed(2)).join(' ')}`)
}

const run = ROLE === 'worker' ? worker : ROLE === 'primary' ? primary : parent
run().catch((err) => { console.error(err); process.exit(1) })
