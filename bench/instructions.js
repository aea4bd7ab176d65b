'use strict'
// Instructions per request, counted by valgrind's callgrind: the same count for the same binary
// and inputs whatever else the machine is doing, so it separates changes far smaller than this
// VM's throughput noise. Each server runs under callgrind with instrumentation off; after a warm-up
// (the JIT settled), instrumentation is switched on for a fixed number of keep-alive requests.
// Only the main thread counts (V8's background compiler threads are left out). Instructions are
// not time: they leave out the kernel's share of a request, and one that misses a cache costs
// more than one that does not (docs/performance.md, "Where the time goes"), so this complements
// bench/paired.js, it does not replace it. KEEP=1 keeps the callgrind files in the temporary
// directory and PERF_MAP=1 has V8 write its perf map beside them, for callgrind_annotate.
// BENCH_MODES picks the servers (bench/server.js), BENCH_OUT names the JSON.
const { execFileSync, fork, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { machine, opt, round3, stopServer, whenReady } = require('./common')

const warmup = opt('warmup', 50000)
const requests = opt('requests', 10000)
const connections = opt('connections', 8)
const modes = (process.env.BENCH_MODES || 'bare,floor,floor-nohook,plugin,fastify-metrics').split(',')
const out = process.env.BENCH_OUT || path.join(__dirname, 'results', 'instructions.json')

/** `n` GET /item/42 requests over `connections` keep-alive sockets; resolves when all are answered. */
function drive (port, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  let sent = 0
  let answered = 0
  return new Promise((resolve, reject) => {
    const one = () => {
      if (sent === n) return
      sent++
      http.get({ host: '127.0.0.1', port, path: '/item/42', agent }, (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
          if (++answered === n) { agent.destroy(); resolve() } else one()
        })
      }).on('error', reject)
    }
    for (let i = 0; i < connections; i++) one()
  })
}

function control (args) {
  return execFileSync('callgrind_control', args, { stdio: 'pipe' }).toString()
}

/** Instructions per request of one server mode. */
async function measure (mode) {
  const file = path.join(os.tmpdir(), `fnm-callgrind-${mode.replace(/[^\w-]/g, "_")}-${process.pid}.out`)
  const child = fork(path.join(__dirname, 'server.js'), [], {
    env: { ...process.env, MODE: mode, PORT: '0' },
    execPath: 'valgrind',
    // --single-threaded-gc keeps V8's GC on the main thread, so the count is deterministic.
    execArgv: ['-q', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${file}`, process.execPath, '--single-threaded-gc', ...(process.env.PERF_MAP ? ['--perf-basic-prof'] : [])],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  try {
    // The server listens on a port the system picks and says which.
    const { port } = await whenReady(child, mode)
    await drive(port, warmup)
    control(['-i', 'on', String(child.pid)])
    await drive(port, requests)
    control(['-i', 'off', String(child.pid)])
    control(['-d', String(child.pid)])
  } finally {
    await stopServer(child, 'SIGINT')
  }
  // Callgrind writes one file per dump and thread (suffix .1-01 for the first dump of thread 1)
  // and more at exit. Only the main thread counts: the others are V8's concurrent compiler, whose
  // work is a one-off that a short window would otherwise charge to the requests.
  let total = 0
  for (const f of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(path.basename(file)))) {
    const text = fs.readFileSync(path.join(os.tmpdir(), f), 'utf8')
    const m = /^totals:\s+(\d+)/m.exec(text)
    if (m && f.endsWith('-01')) total += Number(m[1])
    if (!process.env.KEEP) fs.rmSync(path.join(os.tmpdir(), f))
  }
  return total / requests
}

async function main () {
  if (spawnSync('sh', ['-c', 'command -v valgrind']).status !== 0) {
    console.log('instructions: valgrind is not installed, skipped')
    return
  }
  const perRequest = {}
  for (const mode of modes) {
    perRequest[mode] = Math.round(await measure(mode))
    console.log(`instructions: ${mode.padEnd(16)} ${perRequest[mode].toLocaleString('en-US').padStart(9)} per request`)
  }
  const bare = perRequest.bare
  const overBare = {}
  if (bare !== undefined) for (const m of modes) overBare[m] = perRequest[m] - bare
  const result = { machine: machine(), date: new Date().toISOString().slice(0, 10), warmup, requests, connections, perRequest, overBare, ratioToBare: Object.fromEntries(modes.map((m) => [m, bare ? round3(perRequest[m] / bare) : null])) }
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
  console.table(Object.fromEntries(modes.map((m) => [m, { instructions: perRequest[m], overBare: overBare[m] }])))
}

main().catch((err) => { console.error(err); process.exit(1) })
