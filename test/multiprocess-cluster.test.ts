/**
 * Multiprocess mode with node:cluster: 4 real workers behind one port sharing a directory. An
 * exact number of requests (autocannon) is reported exactly by every worker's /metrics; graceful
 * restarts of every worker, one by one, keep the totals exact; a SIGKILLed worker keeps every
 * counter monotonic and loses at most what it recorded since its last flush.
 */
import t from 'tap'
import { decreases, dirFiles, get, load, monotonicSamples, processFiles, requestsTotal, rpc, sleep, startFixture, tempDir } from './helpers/multiprocess'
import { samples } from './helpers/scrape'

const WORKERS = 4
const FLUSH_MS = 200

/** Scrapes through the shared port until every worker has answered once; bodies by pid. */
async function scrapeEveryWorker (port: number, pids: number[]): Promise<Map<number, string>> {
  const bodies = new Map<number, string>()
  for (let i = 0; i < 60 && bodies.size < pids.length; i++) {
    const r = await get(port, '/metrics')
    if (r.status !== 200) throw new Error(`scrape answered ${r.status}`)
    if (pids.includes(r.pid)) bodies.set(r.pid, r.body)
  }
  if (bodies.size < pids.length) throw new Error(`only ${bodies.size} of ${pids.length} workers answered a scrape`)
  return bodies
}

t.test('4 node:cluster workers behind one port, one directory', async (t) => {
  const dir = tempDir(t)
  const primary = await startFixture('cluster.js', { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS), WORKERS: String(WORKERS) })
  t.teardown(async () => {
    if (primary.child.exitCode === null && primary.child.signalCode === null) {
      primary.child.disconnect() // the primary SIGKILLs its workers and exits
      await primary.exited
    }
  })
  const { port } = primary
  const t0 = Date.now()
  const phase = (name: string): void => { t.comment(`${name}: ${Date.now() - t0} ms`) }
  let pids: number[] = (await rpc(primary, { cmd: 'pids' })).pids
  t.equal(new Set(pids).size, WORKERS, `${WORKERS} workers`)

  let last = new Map<string, number>()
  /** Scrapes every worker; each must report `expected` (when given) and nothing may go down. */
  const check = async (label: string, expected?: number): Promise<number[]> => {
    const bodies = await scrapeEveryWorker(port, pids)
    const totals: number[] = []
    for (const [pid, body] of bodies) {
      const total = requestsTotal(body, '/hello')
      totals.push(total)
      if (expected !== undefined) t.equal(total, expected, `${label}: worker ${pid} reports http_requests_total = ${expected}`)
      const now = monotonicSamples(body)
      t.same(decreases(last, now), [], `${label}: no counter of worker ${pid}'s scrape is below the previous scrape's`)
      last = now
    }
    return totals
  }

  // 1. Exact totals, whichever worker answers.
  await load(port, '/hello', 2000, 16)
  await sleep(3 * FLUSH_MS)
  await check('after 2000 requests', 2000)
  const body = (await scrapeEveryWorker(port, pids)).get(pids[0]) as string
  const s = samples(body)
  t.equal(s.get('http_request_duration_seconds_count{method="GET",route="/hello",status_code="200"}'), 2000, 'histogram count summed too')
  t.equal(s.get('http_requests_received_total{method="GET"}'), 2000 + 0, 'received summed (scrapes are excluded)')
  t.equal(s.get('http_requests_in_flight{method="GET"}'), 0, 'in-flight gauges summed over live workers')
  t.equal([...s.keys()].filter((k) => k.startsWith('fastify_info{')).length, 1, 'fastify_info deduplicated to one series')
  t.same([...s.keys()].filter((k) => k.startsWith('process_start_time_seconds{')).map((k) => Number(/pid="(\d+)"/.exec(k)?.[1])).sort(), [...pids].sort(), 'default metrics of every live worker, with a pid label')

  phase('exact totals')
  // 2. Graceful restarts of every worker, one by one.
  const restarted = await rpc(primary, { cmd: 'restart-all' })
  t.notOk(restarted.error, 'restart-all ran')
  t.same(restarted.exits.map((e: { code: number }) => e.code), [0, 0, 0, 0], 'every old worker exited by itself')
  pids = restarted.pids
  t.equal(pids.length, WORKERS)
  phase('restart-all')
  await check('after restarting every worker', 2000)
  await load(port, '/hello', 1000, 16)
  await sleep(3 * FLUSH_MS)
  await check('after 1000 more requests', 3000)
  await sleep(2 * FLUSH_MS)
  t.equal(processFiles(dir).length, WORKERS, `one file per live worker (${dirFiles(dir).join(', ')})`)
  t.ok(dirFiles(dir).includes('fnm-archive.json'), 'plus the archive')

  phase('load and check')
  // 3. SIGKILL after a flush: nothing is lost.
  let killed = await rpc(primary, { cmd: 'kill', pid: pids[1] })
  t.equal(killed.exit.signal, 'SIGKILL')
  pids = killed.pids
  await check('after a SIGKILL of a flushed worker', 3000)

  phase('first kill')
  // 4. SIGKILL right after a burst: monotonic, loss bounded by the unflushed interval.
  await load(port, '/hello', 1000, 16)
  killed = await rpc(primary, { cmd: 'kill', pid: pids[2] })
  pids = killed.pids
  await sleep(3 * FLUSH_MS)
  const totals = await check('after a SIGKILL right after a burst')
  const lost = 4000 - totals[0]
  t.ok(totals.every((x) => x === totals[0]), 'every worker agrees')
  t.ok(lost >= 0 && lost <= 1000, `at most the killed worker's unflushed requests are lost (lost ${lost} of the 1000 of the burst)`)
  await sleep(2 * FLUSH_MS)
  t.equal(processFiles(dir).length, WORKERS, 'the killed workers\' files were merged into the archive')

  phase('second kill')
  const stopped = await rpc(primary, { cmd: 'stop' })
  t.ok(stopped, 'stopped')
  await primary.exited
})
