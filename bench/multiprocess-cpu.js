'use strict'
/**
 * CPU time of the multiprocess code paths, two builds side by side in one process, for a
 * machine too loaded for wall-clock numbers: the scrape of 8 workers x 2,000 series (a counter
 * and a 19-bucket histogram each; with `--native`, 10 observations per series and native
 * histograms on, protobuf scrape) and one timer flush of 2,000 label sets (the mean of five in a
 * row). Each build gets its
 * own directory and 8 stores (as bench/multiprocess.js builds them); then scrapes and flushes
 * alternate between the builds (ABBA order), each measured with process.cpuUsage() (user +
 * system, every thread of the process). Prints medians and [min, max] per build, and the
 * median of the per-round ratios (new / old).
 *
 *   node bench/multiprocess-cpu.js OLD_DIST NEW_DIST [--rounds 40] [--native] [--flush-only]
 * A dist is a built `dist/` directory (e.g. a copy of the previous build's).
 */
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join, resolve } = require('node:path')
const { median, opt } = require('./common')

const [oldDist, newDist] = process.argv.slice(2).filter((a) => !a.startsWith('--') && !/^\d+$/.test(a)).map((d) => resolve(d))
const ROUNDS = opt('rounds', 40)
const NATIVE = process.argv.includes('--native')
const WORKERS = 8
const FLUSHES = 5
const FLUSH_ONLY = process.argv.includes('--flush-only')

/** One worker's store of build `dist` in `dir` (bench/multiprocess.js's). */
const workerStore = (dist, dir, w) => require('./multiprocess').workerStore(dir, w, { native: NATIVE, observations: NATIVE ? 10 : 1 }, dist)

/** CPU milliseconds of `fn()`. */
async function cpu (fn) {
  const before = process.cpuUsage()
  await fn()
  const d = process.cpuUsage(before)
  return (d.user + d.system) / 1000
}

const stat = (xs) => `${median(xs).toFixed(2)} ms [${Math.min(...xs).toFixed(2)}, ${Math.max(...xs).toFixed(2)}]`

async function main () {
  const builds = { old: { dist: oldDist }, new: { dist: newDist } }
  for (const b of Object.values(builds)) {
    b.dir = mkdtempSync(join(tmpdir(), 'fnm-cpu-'))
    b.stores = []
    for (let w = 0; w < WORKERS; w++) b.stores.push(workerStore(b.dist, b.dir, w))
    for (const s of b.stores) await s.flush(false)
    b.scrape = []
    b.flush = []
  }
  const format = NATIVE ? 'protobuf' : 'prometheus'
  // Warm-up: the JIT settles on both.
  for (let i = 0; i < 5; i++) for (const b of Object.values(builds)) { await b.stores[i % WORKERS].renderBuffer(format); await b.stores[0].flush(false) }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 4 === 0 || r % 4 === 3 ? ['old', 'new'] : ['new', 'old']
    for (const name of order) {
      const b = builds[name]
      if (!FLUSH_ONLY) b.scrape.push(await cpu(() => b.stores[r % WORKERS].renderBuffer(format)))
      // A flush is short: five in a row per sample, so that a garbage collection left by the
      // scrape before weighs less on it.
      b.flush.push(await cpu(async () => { for (let k = 1; k <= FLUSHES; k++) await b.stores[(r + k) % WORKERS].flush(false) }) / FLUSHES)
    }
  }
  const ratio = (key) => median(builds.new[key].map((x, i) => x / builds.old[key][i])).toFixed(3)
  console.log(`${NATIVE ? 'native histograms, protobuf scrape' : 'classic buckets, text scrape'}; ${ROUNDS} rounds; load average ${require('node:os').loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  for (const [name, b] of Object.entries(builds)) console.log(`${name}: ${FLUSH_ONLY ? '' : `scrape of ${WORKERS} x 2,000 CPU ${stat(b.scrape)}; `}flush of 2,000 CPU ${stat(b.flush)}`)
  console.log(`new / old, median of per-round ratios: ${FLUSH_ONLY ? '' : `scrape ${ratio('scrape')}, `}flush ${ratio('flush')}`)
  for (const b of Object.values(builds)) { for (const s of b.stores) await s.release(); rmSync(b.dir, { recursive: true, force: true }) }
}
main().catch((err) => { console.error(err); process.exit(1) })
