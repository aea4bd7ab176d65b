/**
 * Multiprocess mode with independent processes (PM2-style, or started by hand): 3 real processes
 * on their own ports sharing one directory report exact totals; SIGTERM keeps its meaning (with
 * and without an application handler) and hands the totals over. The hundred restarts are in
 * multiprocess-restarts.test.ts.
 */
import t from 'tap'
import { decreases, dirFiles, get, load, monotonicSamples, processFiles, requestsTotal, sleep, startFixture, tempDir, type Started } from './helpers/multiprocess'
import { samples } from './helpers/scrape'

const FLUSH_MS = 200

t.test('3 independent processes on their own ports, one directory', async (t) => {
  const dir = tempDir(t)
  const started: Started[] = []
  t.teardown(async () => {
    for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    await Promise.all(started.map(async (p) => await p.exited))
  })
  const env = { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS), PORT: '0' }
  const [a, b, c] = await Promise.all([
    startFixture('worker.js', env),
    startFixture('worker.js', { ...env, APP_SIGTERM: '1' }),
    startFixture('worker.js', env)
  ])
  started.push(a, b, c)

  // Different amounts on each: every process must report the sum.
  await Promise.all([load(a.port, '/hello', 600), load(b.port, '/hello', 300), load(c.port, '/hello', 100)])
  await sleep(3 * FLUSH_MS)
  let last = new Map<string, number>()
  for (const p of [a, b, c]) {
    const r = await get(p.port, '/metrics')
    t.equal(r.pid, p.pid)
    t.equal(requestsTotal(r.body, '/hello'), 1000, `process ${p.pid} reports all 1000 requests`)
    t.same(decreases(last, monotonicSamples(r.body)), [], 'no counter below the previous scrape of another process')
    last = monotonicSamples(r.body)
  }

  // A request in flight in b is seen by a's scrape; the in-flight gauge sums live processes.
  const slow = get(b.port, '/slow')
  await sleep(FLUSH_MS * 2)
  t.equal(samples((await get(a.port, '/metrics')).body).get('http_requests_in_flight{method="GET"}'), 1, 'b\'s in-flight request, seen from a')
  await slow

  // SIGTERM with an application handler: the app decides (closes, exits 0); totals handed over.
  b.child.kill('SIGTERM')
  t.same(await b.exited, { code: 0, signal: null }, 'the app\'s own SIGTERM handler ran and exited 0')
  // SIGTERM without one: the process still dies by SIGTERM, after handing its totals over.
  await load(c.port, '/hello', 50)
  c.child.kill('SIGTERM')
  t.same(await c.exited, { code: null, signal: 'SIGTERM' }, 'without an app handler, SIGTERM still terminates the process')
  await sleep(3 * FLUSH_MS)
  const after = (await get(a.port, '/metrics')).body
  t.equal(requestsTotal(after, '/hello'), 1050, 'a reports every request of b and c after they exited')
  t.equal(requestsTotal(after, '/slow'), 1, 'b\'s slow request included')
  t.same(decreases(last, monotonicSamples(after)), [], 'monotonic across the exits')
  t.same([...samples(after).keys()].filter((k) => k.startsWith('process_start_time_seconds{')), [`process_start_time_seconds{pid="${a.pid}"}`], 'default metrics of live processes only')
  t.same(processFiles(dir).length, 1, `the exited processes' files were merged (${dirFiles(dir).join(', ')})`)

  // A process started later reports the history too.
  const d = await startFixture('worker.js', env)
  started.push(d)
  t.equal(requestsTotal((await get(d.port, '/metrics')).body, '/hello'), 1050, 'a new process sees the totals of processes that exited before it started')
})
