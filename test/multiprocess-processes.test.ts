/**
 * Multiprocess mode with independent processes (PM2-style, or started by hand): 3 real processes
 * on their own ports sharing one directory report exact totals; SIGTERM keeps its meaning (with
 * and without an application handler) and hands the totals over; a hundred restarts, ending in
 * every way (close, exit, SIGTERM, SIGKILL), leave the directory bounded and the totals exact,
 * while two live processes are scraped continuously and never go down or fail.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { decreases, dirFiles, FIXTURES, get, load, monotonicSamples, processFiles, requestsTotal, sleep, startFixture, tempDir, type Started } from './helpers/multiprocess'
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
  t.equal(requestsTotal(after, '/hello'), 1051, 'a reports every request of b and c (the slow one included) after they exited')
  t.same(decreases(last, monotonicSamples(after)), [], 'monotonic across the exits')
  t.same([...samples(after).keys()].filter((k) => k.startsWith('process_start_time_seconds{')), [`process_start_time_seconds{pid="${a.pid}"}`], 'default metrics of live processes only')
  t.same(processFiles(dir).length, 1, `the exited processes' files were merged (${dirFiles(dir).join(', ')})`)

  // A process started later reports the history too.
  const d = await startFixture('worker.js', env)
  started.push(d)
  t.equal(requestsTotal((await get(d.port, '/metrics')).body, '/hello'), 1051, 'a new process sees the totals of processes that exited before it started')
})

t.test('a hundred restarts, scraped all along by two live processes', async (t) => {
  const dir = tempDir(t)
  const started: Started[] = []
  t.teardown(async () => {
    for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    await Promise.all(started.map(async (p) => await p.exited))
  })
  const env = { MP_DIR: dir, FLUSH_MS: '100', PORT: '0' }
  const live = await Promise.all([startFixture('worker.js', env), startFixture('worker.js', env)])
  started.push(...live)

  // Two scrapers, one per live process, while the short-lived processes come and go.
  let scraping = true
  const seen: number[][] = [[], []]
  const problems: string[] = []
  const scrapers = live.map(async (p, i) => {
    let prev = new Map<string, number>()
    while (scraping) {
      const r = await get(p.port, '/metrics')
      if (r.status !== 200) problems.push(`scrape of ${p.pid} answered ${r.status}`)
      const now = monotonicSamples(r.body)
      for (const d of decreases(prev, now)) problems.push(`${p.pid}: ${d}`)
      prev = now
      seen[i].push(requestsTotal(r.body, '/once'))
      await sleep(20)
    }
  })

  const RUNS = 100
  const REQUESTS = 10
  const MODES = ['close', 'exit', 'sigterm', 'sigkill']
  const exits: Array<{ mode: string, code: number | null, signal: NodeJS.Signals | null }> = []
  let maxFiles = 0
  let next = 0
  const runOne = async (i: number): Promise<void> => {
    const mode = MODES[i % MODES.length]
    const child = spawn(process.execPath, [join(FIXTURES, 'once.js')], {
      env: { ...process.env, MP_DIR: dir, FLUSH_MS: '100', MODE: mode, REQUESTS: String(REQUESTS), PLUGIN: i % 10 === 0 ? '1' : '0' },
      stdio: ['ignore', 'inherit', 'inherit']
    })
    const { code, signal } = await new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    exits.push({ mode, code, signal })
    maxFiles = Math.max(maxFiles, processFiles(dir).length)
  }
  const t0 = Date.now()
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < RUNS) await runOne(next++)
  }))
  t.comment(`${RUNS} runs in ${Date.now() - t0} ms`)
  await sleep(500)
  scraping = false
  await Promise.all(scrapers)

  const expected = { close: { code: 0, signal: null }, exit: { code: 0, signal: null }, sigterm: { code: null, signal: 'SIGTERM' }, sigkill: { code: null, signal: 'SIGKILL' } } as const
  t.same(exits.filter((e) => e.code !== expected[e.mode as keyof typeof expected].code || e.signal !== expected[e.mode as keyof typeof expected].signal), [], 'every run ended the way its mode says (signals keep their meaning)')
  t.same(problems, [], 'no scrape failed and no counter ever went down')
  t.ok(seen[0].length > 5 && seen[1].length > 5, `both live processes were scraped all along (${seen[0].length} and ${seen[1].length} scrapes)`)
  for (const p of live) t.equal(requestsTotal((await get(p.port, '/metrics')).body, '/once'), RUNS * REQUESTS, `process ${p.pid} reports exactly ${RUNS * REQUESTS} requests of the ${RUNS} runs`)
  t.ok(maxFiles <= 2 + 4 + 4, `the directory never held more than the live and the recently exited processes' files (max ${maxFiles} process files)`)
  t.same(processFiles(dir).length, 2, 'in the end, one file per live process')
  t.same(dirFiles(dir).filter((n) => !n.startsWith('fnm-')), [], 'no temporary file left behind')
  t.ok(dirFiles(dir).length <= 3, `directory bounded: ${dirFiles(dir).join(', ')}`)
})
