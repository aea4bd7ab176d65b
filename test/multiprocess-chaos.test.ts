/**
 * Multiprocess chaos, bounded and replayable: 3 real worker processes of two apps each (api and
 * admin, default metrics on, each with an app counter of its own) share one directory (a small
 * tmpfs where the test may mount one). A seeded random sequence of events (requests, graceful
 * restarts, SIGKILLs after a flush, SIGKILLs right after a burst, a period with the disk full)
 * is checked after every event by scrapes through random workers and apps against a model of
 * what was served:
 * - a scrape never reports more than was served, nor less than the last settled scrape (no
 *   counter goes down), and answers 200 even while the disk is full (then a scrape reports its
 *   own process from memory and the others as they last wrote, so only these bounds hold);
 * - once settled, it reports exactly what was served less what SIGKILLs lost, and each loss is
 *   within the documented bound (what the killed process recorded since its last flush: at most
 *   the burst it was killed after);
 * - the settled exposition has no duplicate series and passes `promtool check metrics`;
 * - native histograms (on in every app): each settled protobuf scrape holds, for each app's
 *   route, one native histogram whose buckets add up to its count, which is the requests served
 *   less lost, and which Prometheus would read as a continuation of the last settled one (no
 *   counter reset: the schema never finer, no bucket lower).
 * The seed is printed; CHAOS_SEED=<seed> replays a run.
 */
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { duplicateSeries, rpc, sleep, startFixture, type Started } from './helpers/multiprocess'
import { hasPromtool, promtoolCheck, samples } from './helpers/scrape'
import { continues, decodeDelimited, nativeOf, PROMETHEUS_PROTOBUF_ACCEPT, type NativeState } from './helpers/protobuf'

const SEED = process.env.CHAOS_SEED !== undefined ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31)
const EVENTS = 12
const WORKERS = 3
const FLUSH_MS = 100
const APPS = ['api', 'admin'] as const
type App = typeof APPS[number]

/** mulberry32: a small seeded generator, so that a run can be replayed. */
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The served count of one series, and what SIGKILLs lost of it: exactly `lo` once pinned, at most `hi`. */
interface Model { served: number, lo: number, hi: number, settled: number }

t.test(`chaos: ${WORKERS} workers x 2 apps, restarts, SIGKILLs, a full disk (seed ${SEED})`, async (t) => {
  t.comment(`seed ${SEED}; replay with CHAOS_SEED=${SEED}`)
  const rnd = random(SEED)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  // Which worker and app serve each scrape: a generator of its own, since how many scrapes an
  // event takes depends on timing, and the events must follow from the seed alone.
  const scrapeRnd = random(SEED ^ 0x5bd1e995)
  const pickForScrape = <T>(xs: readonly T[]): T => xs[Math.floor(scrapeRnd() * xs.length)]

  // A small tmpfs, so that the disk can really be filled; else a plain directory without that period.
  const dir = mkdtempSync(join(tmpdir(), 'fnm-chaos-'))
  let canFill = false
  if (process.platform === 'linux' && process.getuid?.() === 0) {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'pipe' })
      canFill = true
    } catch {}
  }
  if (!canFill) t.comment('cannot mount a tmpfs here (needs root on Linux): the disk-full period is left out')
  const promtool = hasPromtool()
  if (!promtool) t.comment('promtool is not installed (Debian package prometheus): the expositions are not checked by it')

  // The workers run plain (without the test runner's loader in NODE_OPTIONS): they start in a
  // fraction of the time, and the run stays within seconds.
  const env = { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS), NODE_OPTIONS: '' }
  const workers: Started[] = []
  const all: Started[] = []
  // One teardown, in this order: the workers stop writing before the tmpfs goes (a worker
  // still writing into the directory would make its removal fail).
  t.teardown(async () => {
    for (const w of all) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL')
    await Promise.all(all.map(async (w) => await w.exited))
    if (canFill) spawnSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  })
  const start = async (): Promise<Started> => {
    const w = await startFixture('chaos-worker.js', env)
    all.push(w)
    return w
  }
  for (let i = 0; i < WORKERS; i++) workers.push(await start())

  // Four modelled series: the package's http_requests_total and the app's jobs_done_total, per app.
  const model = new Map<string, Model>()
  const keyOf = (kind: 'requests' | 'jobs', app: App): string => `${kind} ${app}`
  for (const app of APPS) for (const kind of ['requests', 'jobs'] as const) model.set(keyOf(kind, app), { served: 0, lo: 0, hi: 0, settled: 0 })
  const read = (body: string): Map<string, number> => {
    const s = samples(body)
    const out = new Map<string, number>()
    for (const app of APPS) {
      out.set(keyOf('requests', app), s.get(`http_requests_total{method="GET",route="/${app}/x",status_code="200"}`) ?? 0)
      out.set(keyOf('jobs', app), s.get(`jobs_done_total{app="${app}"}`) ?? 0)
    }
    return out
  }

  const problems: string[] = []
  let scrapes = 0
  const lastNative = new Map<App, NativeState>()
  let nativeChecks = 0
  /** The settled values in protobuf, through the same worker and app: native buckets as above. */
  const checkNative = async (label: string, w: Started, app: App, values: Map<string, number>): Promise<void> => {
    const r = await rpc(w, { cmd: 'scrape', app, accept: PROMETHEUS_PROTOBUF_ACCEPT })
    nativeChecks++
    const family = decodeDelimited(Buffer.from(r.body as string, 'base64')).find((f) => f.name === 'http_request_duration_seconds')
    for (const a of APPS) {
      const m = family?.metric?.find((x: any) => x.label.some((l: any) => l.name === 'route' && l.value === `/${a}/x`))
      const expected = values.get(keyOf('requests', a)) as number
      if (m === undefined) { if (expected !== 0) problems.push(`${label}: no native histogram for /${a}/x`); continue }
      const h = m.histogram
      const native = nativeOf(h)
      let inBuckets = native.zeroCount
      for (const c of native.buckets.values()) inBuckets += c
      if ((h.sampleCount ?? 0) !== expected || inBuckets !== expected) problems.push(`${label}: /${a}/x native histogram: count ${h.sampleCount ?? 0}, in its buckets ${inBuckets}, expected ${expected}`)
      const before = lastNative.get(a)
      if (before !== undefined) for (const p of continues(before, native)) problems.push(`${label}: /${a}/x native histogram would read as a counter reset: ${p}`)
      if (!full) lastNative.set(a, native)
    }
  }
  let full = false
  /**
   * Scrapes through random workers and apps until the values are what the model says (losses
   * of SIGKILLs pinned once a value stays the same over several flush intervals). Every scrape
   * is checked against the bounds; the settled one by promtool and for duplicates.
   */
  const settle = async (label: string): Promise<void> => {
    const deadline = Date.now() + 15000
    let stableSince = 0
    let previous = ''
    let fullScrapes = 0
    for (;;) {
      const w = pickForScrape(workers)
      const app = pickForScrape(APPS)
      const r = await rpc(w, { cmd: 'scrape', app })
      scrapes++
      if (r.status !== 200) { problems.push(`${label}: scrape of ${app} in ${w.pid} answered ${r.status}`); return }
      const values = read(r.body as string)
      let exact = true
      for (const [key, m] of model) {
        const v = values.get(key) as number
        if (v > m.served - m.lo) problems.push(`${label}: ${key} = ${v}, more than served less lost (${m.served} - ${m.lo})`)
        if (v < m.settled) problems.push(`${label}: ${key} = ${v}, below the last settled scrape (${m.settled})`)
        if (v < m.served - m.hi) exact = false
        if (m.lo === m.hi ? v !== m.served - m.lo : true) exact = false
      }
      const now = JSON.stringify([...values])
      if (now !== previous) { previous = now; stableSince = Date.now() }
      const unpinned = [...model.values()].some((m) => m.lo !== m.hi)
      const pinnable = unpinned && !full && Date.now() - stableSince >= 5 * FLUSH_MS &&
        [...model].every(([key, m]) => { const v = values.get(key) as number; return v >= m.served - m.hi && v <= m.served - m.lo })
      if (pinnable) {
        for (const [key, m] of model) { m.lo = m.hi = m.served - (values.get(key) as number) }
        exact = true
      }
      if (exact) {
        // While the disk is full, a scrape reports its own process from memory and the others as
        // they last wrote: scrapes served by different processes may disagree (documented), so
        // a scrape of that period does not raise the floor of the next.
        if (!full) for (const [key, m] of model) m.settled = values.get(key) as number
        const dups = duplicateSeries(r.body as string)
        if (dups.length > 0) problems.push(`${label}: duplicate series ${dups.slice(0, 3).join(', ')}`)
        if (promtool) for (const p of promtoolCheck(r.body as string)) problems.push(`${label}: promtool: ${p}`)
        if (!full) await checkNative(label, w, app, values)
        return
      }
      if (full && ++fullScrapes >= 4) return // while the disk is full, files do not move: bounds only
      if (Date.now() > deadline) { problems.push(`${label}: not settled: ${now} vs ${JSON.stringify([...model])}`); return }
      await sleep(FLUSH_MS / 2)
    }
  }

  const hit = async (w: Started, app: App, n: number): Promise<void> => {
    await rpc(w, { cmd: 'hit', app, n })
    for (const kind of ['requests', 'jobs'] as const) (model.get(keyOf(kind, app)) as Model).served += n
  }

  const fullAt = canFill ? 3 + Math.floor(rnd() * (EVENTS - 7)) : -1
  const fullFor = 3
  const filler = join(dir, 'filler')
  const log: string[] = []
  const t0 = Date.now()
  let fullSeen = false
  for (let e = 0; e < EVENTS; e++) {
    if (e === fullAt) {
      try { writeFileSync(filler, Buffer.alloc(64 * 1024 * 1024)) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err }
      full = true
      fullSeen = true
      log.push(`${e}: disk full`)
    }
    if (full && e === fullAt + fullFor) {
      unlinkSync(filler)
      full = false
      log.push(`${e}: disk freed`)
      await settle(`${e} after the disk was freed`)
    }
    const i = Math.floor(rnd() * workers.length)
    const w = workers[i]
    const app = pick(APPS)
    const n = 1 + Math.floor(rnd() * 20)
    const roll = rnd()
    // While the disk is full only requests: an exit then loses what was recorded since the disk filled (documented).
    const kind = full || roll < 0.5 ? 'hit' : roll < 0.7 ? 'restart' : roll < 0.85 ? 'kill' : 'burst-kill'
    log.push(`${e} (${Date.now() - t0} ms): ${kind} worker ${i}${kind === 'hit' || kind === 'burst-kill' ? ` ${app} x${n}` : ''}`)
    if (kind === 'hit') {
      await hit(w, app, n)
    } else if (kind === 'restart') {
      await rpc(w, { cmd: 'close' })
      const exit = await w.exited
      if (exit.code !== 0) problems.push(`${e}: graceful exit ended with ${JSON.stringify(exit)}`)
      workers[i] = await start()
    } else {
      if (kind === 'burst-kill') {
        await hit(w, app, n)
        // Killed right away: what it recorded since its last flush (at most this burst) may be lost.
        for (const k of ['requests', 'jobs'] as const) (model.get(keyOf(k, app)) as Model).hi += n
      }
      w.child.kill('SIGKILL')
      await w.exited
      workers[i] = await start()
    }
    await settle(`${e} ${kind}`)
  }
  if (full) { unlinkSync(filler); full = false; await settle('end, disk freed') }
  t.comment(log.join('\n'))
  t.same(problems, [], `${scrapes} scrapes, every one within the model's bounds, each settled one exact, without duplicates${promtool ? ' and clean for promtool' : ''}; ${nativeChecks} settled protobuf scrapes with exact native histograms that never reset`)
  t.ok(nativeChecks >= EVENTS - 3, `native histograms checked at ${nativeChecks} settled points`)
  const lost = [...model].map(([key, m]) => `${key}: ${m.served} served, ${m.lo} lost`).join('; ')
  t.ok([...model.values()].every((m) => m.lo === m.hi), `every loss pinned within its bound (${lost})`)
  if (fullSeen) {
    const r = await rpc(workers[0], { cmd: 'scrape', app: 'api' })
    t.ok((samples(r.body as string).get('metrics_errors_total{component="multiprocess"}') ?? 0) >= 1, 'the failed writes of the full period are counted')
  }
})
