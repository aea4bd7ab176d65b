/**
 * Multiprocess mode, a hundred restarts: short-lived real processes ending in every way (close,
 * exit, SIGTERM, SIGKILL after a flush) leave the directory bounded and the totals exact, while
 * two live processes are scraped continuously and never fail nor show a counter going down.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { decreases, dirFiles, FIXTURES, get, monotonicSamples, processFiles, requestsTotal, sleep, startFixture, tempDir, type Started } from './helpers/multiprocess'

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
      await sleep(100)
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
  // A live process may be between writing its temporary file and renaming it at this instant;
  // what must never stay behind is a temporary file of a process that has exited.
  const livePids = live.map((p) => `-${p.pid}-`)
  const settled = dirFiles(dir).filter((n) => !livePids.some((pid) => n.startsWith('.fnm-tmp-') && n.includes(pid)))
  t.same(settled.filter((n) => !n.startsWith('fnm-')), [], 'no temporary file of an exited process left behind')
  t.ok(settled.length <= 3, `directory bounded: ${settled.join(', ')}`)
})
