'use strict'
// Latency per request of bare Fastify, this plugin and fastify-metrics, measured by one client
// that takes turns: one request to each server, each time waiting for the answer, in rotating
// order, so that the three sample the machine's drift at the same moments (microseconds apart).
// Only one request is in flight at a time, so the servers (all pinned to CPU 0) never compete
// and no queue forms: this is each request's own latency at light load, the part a plugin adds
// to. Under a saturating load (bench/http.js) latency is queueing, connections over throughput,
// and its ratio to bare follows the throughput ratio. Every round starts fresh servers (see
// bench/paired.js for why). The client uses raw sockets (no HTTP client library on its path) and
// runs pinned to CPU 1.
// Options: --rounds (7), --requests per server per round (30000), --warmup per server (20000).
const { execFileSync } = require('node:child_process')
const { writeFileSync } = require('node:fs')
const net = require('node:net')
const { join } = require('node:path')
const { machine, median, opt, round3, startBenchServer, stopServer, summary, useTaskset } = require('./common')

const ROUNDS = opt('rounds', 7)
const REQUESTS = opt('requests', 30000)
const WARMUP = opt('warmup', 20000)
const MODES = (process.env.BENCH_MODES || 'bare,plugin,fastify-metrics').split(',')
const OUT = process.env.BENCH_OUT || join(__dirname, 'results', 'latency.json')
if (MODES[0] !== 'bare') throw new Error(`BENCH_MODES must start with bare: ratios are taken to it (got ${MODES.join(',')})`)
const REQUEST = Buffer.from('GET /item/42 HTTP/1.1\r\nHost: bench\r\n\r\n')

/** A keep-alive connection that sends one request and resolves with the complete response. */
function connect (port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
    let pending = null
    let buffered = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      buffered += chunk
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      const length = /content-length: *(\d+)/i.exec(buffered.slice(0, end))
      if (length === null) throw new Error(`response without Content-Length: ${buffered.slice(0, end)}`)
      if (buffered.length < end + 4 + Number(length[1])) return
      if (!buffered.startsWith('HTTP/1.1 200')) throw new Error(`unexpected response: ${buffered.slice(0, end)}`)
      buffered = ''
      const done = pending
      pending = null
      done()
    })
    socket.once('error', reject)
    socket.once('connect', () => resolve({
      socket,
      send: () => new Promise((resolve) => { pending = resolve; socket.write(REQUEST) })
    }))
  })
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]

/** One round: fresh servers, a warm-up, then `requests` timed requests to each, taken in turns. */
async function round (r) {
  const servers = []
  try {
    for (const mode of MODES) servers.push(await startBenchServer(mode))
    const conns = await Promise.all(servers.map((s) => connect(s.port)))
    const samples = MODES.map(() => new Float64Array(REQUESTS))
    const k = MODES.length
    for (let i = 0; i < WARMUP + REQUESTS; i++) {
      for (let j = 0; j < k; j++) {
        // Rotate who goes first, so that no server always follows the same one.
        const s = (i + j + r) % k
        const t0 = process.hrtime.bigint()
        await conns[s].send()
        const ns = Number(process.hrtime.bigint() - t0)
        if (i >= WARMUP) samples[s][i - WARMUP] = ns
      }
    }
    for (const c of conns) c.socket.destroy()
    return samples.map((xs) => {
      const sorted = xs.sort()
      return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999) }
    })
  } finally {
    await Promise.all(servers.map((child) => stopServer(child)))
  }
}

async function main () {
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const result = await round(r)
    rounds.push(result)
    console.log(`round ${r + 1}/${ROUNDS}: ` + MODES.map((m, i) => `${m} p50 ${(result[i].p50 / 1000).toFixed(1)} us p99 ${(result[i].p99 / 1000).toFixed(1)} us`).join(', '))
  }
  const servers = {}
  MODES.forEach((mode, i) => {
    const us = (key) => round3(median(rounds.map((x) => x[i][key])) / 1000)
    // Ratios are taken per round (the round's own bare), then the median of them.
    const vsBare = (key) => summary(rounds.map((x) => x[i][key] / x[0][key]))
    servers[mode] = { p50us: us('p50'), p99us: us('p99'), p999us: us('p999'), ...(i === 0 ? {} : { p50VsBare: vsBare('p50'), p99VsBare: vsBare('p99'), p999VsBare: vsBare('p999') }) }
    const s = servers[mode]
    console.log(`latency: ${mode.padEnd(16)} p50 ${s.p50us} us, p99 ${s.p99us} us, p99.9 ${s.p999us} us` + (i === 0 ? '' : `; vs bare: p50 ${s.p50VsBare.median}x, p99 ${s.p99VsBare.median}x [${s.p99VsBare.min}, ${s.p99VsBare.max}], p99.9 ${s.p999VsBare.median}x`))
  })
  const result = {
    date: new Date().toISOString(),
    machine: machine(),
    method: `one client pinned to CPU 1 takes turns over ${MODES.join(', ')} (all pinned to CPU 0), one request in flight at a time; ${WARMUP} warm-up and ${REQUESTS} timed requests per server per round; fresh servers each round; medians of ${ROUNDS} rounds, ratios to the same round's bare`,
    rounds: rounds.map((x) => Object.fromEntries(MODES.map((m, i) => [m, { p50us: round3(x[i].p50 / 1000), p99us: round3(x[i].p99 / 1000), p999us: round3(x[i].p999 / 1000) }]))),
    servers
  }
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n')
  console.log(`wrote ${OUT}`)
}

// The client runs on CPU 1, away from the servers: re-run this script pinned there.
if (useTaskset && process.env.BENCH_LATENCY_CLIENT !== '1') {
  execFileSync('taskset', ['-c', '1', process.execPath, __filename, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, BENCH_LATENCY_CLIENT: '1' } })
} else {
  main().catch((err) => { console.error(err); process.exit(1) })
}
