'use strict'
// CPU time per request of two servers measured at the same moments on the same core. Each pair
// (bare Fastify and one other server) runs side by side pinned to CPU 0, each under its own wrk
// (both on CPU 1), for the same seconds; each server's CPU time over the run divided by the
// requests it served is its cost per request. The VM's speed drifts by tens of percent within a
// minute, which sequential runs (bench/http.js) cannot separate from a 3% difference; here the
// drift hits both servers of a pair alike. On a saturated core throughput is the inverse of
// this cost, so bare's cost over the other's is the throughput ratio the goal speaks of. Every
// round starts fresh processes: one process's JIT and memory-layout luck shifts its cost by a few
// percent for its whole life, so one pair of processes measured many times measures that luck
// (a bare-vs-bare pair came out at 1.027 [1.019, 1.054] that way). A bare-vs-bare pair measures
// the method's own error. BENCH_MODES picks the other servers, BENCH_OUT names the JSON and
// BENCH_NODE_ARGS passes Node flags to both servers of every pair.
const { writeFileSync } = require('node:fs')
const { join } = require('node:path')
const { machine, median, opt, round3, runWrk, startBenchServer, stats, stopServer, summary, useWrk } = require('./common')

const ROUNDS = opt('rounds', 11)
const SECONDS = opt('seconds', 3)
const WARMUP = opt('warmup', 2)
const CONNECTIONS = opt('connections', 32)
const OTHERS = (process.env.BENCH_MODES || 'bare,floor,floor-nohook,plugin,fastify-metrics').split(',')
const OUT = process.env.BENCH_OUT || join(__dirname, 'results', 'paired.json')

/** Node flags for both servers of every pair (BENCH_NODE_ARGS, e.g. '--single-threaded-gc'). */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS || '').split(' ').filter(Boolean)

const wrk = (port, seconds) => runWrk(port, seconds, CONNECTIONS)

/** CPU ns per request of each server of the pair, measured over the same seconds. */
async function pairRun (a, b, seconds) {
  const [a0, b0] = await Promise.all([stats(a), stats(b)])
  await Promise.all([wrk(a.port, seconds), wrk(b.port, seconds)])
  const [a1, b1] = await Promise.all([stats(a), stats(b)])
  const cost = (s0, s1) => {
    const n = Math.max(1, s1.served - s0.served)
    return { user: ((s1.cpu.user - s0.cpu.user) * 1000) / n, system: ((s1.cpu.system - s0.cpu.system) * 1000) / n }
  }
  return [cost(a0, a1), cost(b0, b1)]
}

/** One round of one pair: fresh processes (a process's own JIT and memory-layout luck moves its
 * cost by a few percent for its whole life), a warm-up, then one measured run. */
async function pairRound (other, round) {
  // Alternate which server is started first.
  const first = round % 2 === 0
  const started = []
  try {
    for (const mode of first ? ['bare', other] : [other, 'bare']) {
      started.push(await startBenchServer(mode, NODE_ARGS))
    }
    const [bare, child] = first ? started : [started[1], started[0]]
    await pairRun(bare, child, WARMUP)
    const [b, o] = await pairRun(bare, child, SECONDS)
    return { b, o }
  } finally {
    // Wait for both to exit, so that the next pair has the core to itself.
    await Promise.all(started.map((child) => stopServer(child)))
  }
}

async function main () {
  if (!useWrk) {
    console.log('paired: wrk is not installed, skipped')
    return
  }
  const pairs = Object.fromEntries(OTHERS.map((m) => [m, { rounds: [] }]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const other of OTHERS) {
      const { b, o } = await pairRound(other, r)
      const bareNs = b.user + b.system
      const otherNs = o.user + o.system
      pairs[other].rounds.push({ bareNs: Math.round(bareNs), otherNs: Math.round(otherNs), throughputVsBare: round3(bareNs / otherNs), userNsOverBare: Math.round(o.user - b.user), systemNsOverBare: Math.round(o.system - b.system) })
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS}: ${OTHERS.map((m) => `${m} ${pairs[m].rounds[r].throughputVsBare}`).join(', ')}\n`)
  }
  for (const other of OTHERS) {
    const rounds = pairs[other].rounds
    const ratios = rounds.map((r) => r.throughputVsBare)
    pairs[other] = {
      throughputVsBare: summary(ratios),
      nsPerRequestOverBare: Math.round(median(rounds.map((r) => r.otherNs - r.bareNs))),
      // Where the difference is spent: in the process (user) or in the kernel on its behalf (system).
      userNsOverBare: Math.round(median(rounds.map((r) => r.userNsOverBare))),
      systemNsOverBare: Math.round(median(rounds.map((r) => r.systemNsOverBare))),
      bareNsPerRequest: Math.round(median(rounds.map((r) => r.bareNs))),
      rounds
    }
    console.log(`paired: ${other.padEnd(16)} throughput vs bare ${pairs[other].throughputVsBare.median} [${pairs[other].throughputVsBare.min}, ${pairs[other].throughputVsBare.max}], +${pairs[other].nsPerRequestOverBare} ns/request (user ${pairs[other].userNsOverBare}, system ${pairs[other].systemNsOverBare})`)
  }
  const result = { date: new Date().toISOString(), machine: machine(), method: { rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, route: 'GET /item/:id (small JSON)' }, pairs }
  if (pairs.plugin && pairs['fastify-metrics']) {
    // plugin / fastify-metrics throughput, through their costs relative to the same bare server.
    result.pluginVsFastifyMetrics = round3(pairs.plugin.throughputVsBare.median / pairs['fastify-metrics'].throughputVsBare.median)
  }
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n')
}

main().catch((err) => { console.error(err); process.exit(1) })
