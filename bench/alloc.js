'use strict'
// Allocations and garbage collection per request (issue 24: where the points above the floor go,
// beyond instructions). Each server (BENCH_MODES, default bare,floor,plugin-nodefault,plugin)
// runs under wrk; after a warm-up, V8's sampling heap profiler (allocations collected since
// included) and the 'gc' performance entries cover one measured run. Prints bytes allocated per
// request, collections and their time per 10,000 requests, and the sites that allocate more than
// bare does; writes bench/results/alloc.json (BENCH_OUT). Rounds alternate the servers; the
// sampling (every 256 bytes on average) makes each figure an estimate within a few percent.
const { writeFileSync } = require('node:fs')
const { join } = require('node:path')
const { machine, median, opt, runWrk, startBenchServer, stopServer } = require('./common')

const ROUNDS = opt('rounds', 3)
const SECONDS = opt('seconds', 3)
const WARMUP = opt('warmup', 2)
const MODES = (process.env.BENCH_MODES || 'bare,floor,plugin-nodefault,plugin').split(',')
const OUT = process.env.BENCH_OUT || join(__dirname, 'results', 'alloc.json')

const wrk = (port, seconds) => runWrk(port, seconds, 32)

/** Sends `message` to the server and resolves with its reply whose `alloc` is `answer`. */

function ask (child, message, answer) {
  return new Promise((resolve) => {
    const on = (m) => { if (m?.alloc === answer) { child.off('message', on); resolve(m) } }
    child.on('message', on)
    child.send(message)
  })
}

async function measure (mode) {
  const child = await startBenchServer(mode)
  try {
    await wrk(child.port, WARMUP)
    await ask(child, 'alloc-start', 'started')
    await wrk(child.port, SECONDS)
    return await ask(child, 'alloc-stop', 'stopped')
  } finally {
    await stopServer(child)
  }
}

async function main () {
  const runs = Object.fromEntries(MODES.map((m) => [m, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of r % 2 === 0 ? MODES : [...MODES].reverse()) runs[mode].push(await measure(mode))
  }
  const result = { date: new Date().toISOString(), machine: machine(), method: { rounds: ROUNDS, seconds: SECONDS, samplingIntervalBytes: 256 }, modes: {} }
  const perRequest = (run, key) => Object.fromEntries(run.sites.map(([k, b]) => [k, b / run.requests]))
  for (const mode of MODES) {
    const rs = runs[mode]
    const scavenges = rs.map((x) => (x.gcs.filter((g) => g.kind === 1).length * 10000) / x.requests)
    const gcMs = rs.map((x) => (x.gcs.reduce((t, g) => t + g.ms, 0) * 10000) / x.requests)
    // Bytes per request of each site, median over the rounds.
    const bySite = new Map()
    for (const x of rs) for (const [k, b] of Object.entries(perRequest(x))) { if (!bySite.has(k)) bySite.set(k, []); bySite.get(k).push(b) }
    const sites = [...bySite].map(([k, bs]) => [k, Math.round(median([...bs, ...Array(rs.length - bs.length).fill(0)]))]).filter(([, b]) => b >= 8).sort((a, b) => b[1] - a[1])
    result.modes[mode] = {
      bytesPerRequest: Math.round(median(rs.map((x) => x.bytes / x.requests))),
      spread: rs.map((x) => Math.round(x.bytes / x.requests)),
      scavengesPer10k: Math.round(median(scavenges) * 100) / 100,
      gcMsPer10k: Math.round(median(gcMs) * 100) / 100,
      sites
    }
    const m = result.modes[mode]
    console.log(`alloc: ${mode.padEnd(18)} ${m.bytesPerRequest} bytes/request [${m.spread.join(', ')}], ${m.scavengesPer10k} scavenges and ${m.gcMsPer10k} ms of GC per 10,000 requests`)
  }
  if (result.modes.bare !== undefined) {
    const bare = new Map(result.modes.bare.sites)
    for (const mode of MODES.filter((m) => m !== 'bare')) {
      const extra = result.modes[mode].sites.map(([k, b]) => [k, b - (bare.get(k) ?? 0)]).filter(([, d]) => d >= 8)
      result.modes[mode].moreThanBare = extra
      console.log(`\n${mode}: sites allocating more than bare (bytes/request, sampled)`)
      for (const [k, d] of extra.slice(0, 15)) console.log(`  +${String(d).padStart(5)}  ${k}`)
    }
  }
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n')
}

main().catch((err) => { console.error(err); process.exit(1) })
