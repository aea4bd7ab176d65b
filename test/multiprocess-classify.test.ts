/**
 * Every series classified by what it is, not by its name (docs/multiprocess.md, "What a scrape
 * returns"). Four real processes, each an app with the plugin's real default metrics and app
 * metrics named like default metrics (process_jobs_total, nodejs_jobs_total, process_job_seconds,
 * nodejs_job_bytes, a process_queue_<aggregator> gauge per aggregator, nodejs_workers_busy). One
 * exits, one is SIGKILLed: the app's counters, histogram and summary stay summed over all four,
 * its gauges follow their aggregator over the live two, and the real default metrics stay one
 * series per live process with a pid label. Before the fix, the store took every process_* and
 * nodejs_* metric for a default metric: per live process, dead processes' counts gone.
 */
import t from 'tap'
import { rpc, startFixture, tempDir, type Started } from './helpers/multiprocess'
import { samples } from './helpers/scrape'

const FLUSH_MS = 100

t.test('app metrics named process_* and nodejs_* are the app\'s; the default metrics stay per process', async (t) => {
  const dir = tempDir(t)
  const workers: Started[] = []
  t.teardown(() => { for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL') })
  for (let i = 0; i < 4; i++) workers.push(await startFixture('named-worker.js', { MP_DIR: dir, FLUSH_MS: String(FLUSH_MS) }))
  const [a, b, c, d] = workers
  // Worker i records i + 1 jobs and sets every gauge to i + 1.
  for (let i = 0; i < 4; i++) await rpc(workers[i], { cmd: 'record', jobs: i + 1, gauge: i + 1 })

  const scrape = async (w: Started): Promise<Map<string, number>> => {
    const r = await rpc(w, { cmd: 'scrape' })
    t.equal(r.status, 200)
    return samples(r.body)
  }
  const pidsOf = (s: Map<string, number>, name: string): number[] => [...s.keys()].filter((k) => k.startsWith(`${name}{`)).map((k) => Number(/pid="(\d+)"/.exec(k)?.[1])).sort((x, y) => x - y)
  const check = (s: Map<string, number>, label: string, jobs: number, gauges: Record<string, number | undefined>, live: Started[]): void => {
    t.equal(s.get('process_jobs_total{queue="mail"}'), jobs, `${label}: process_jobs_total summed over every process, alive and exited`)
    t.equal(s.get('nodejs_jobs_total{queue="mail"}'), jobs, `${label}: nodejs_jobs_total too`)
    t.equal(s.get('process_jobs_max_total{queue="mail"}'), jobs, `${label}: a counter with aggregator max is summed too (a max would go down when a process exits)`)
    t.equal([...s.keys()].filter((k) => k.startsWith('nodejs_jobs_omit_total')).length, 0, `${label}: a counter with aggregator omit is left out`)
    t.same(['1', '10', '+Inf'].map((le) => s.get(`process_job_seconds_bucket{queue="mail",le="${le}"}`)), [0, jobs, jobs], `${label}: process_job_seconds buckets`)
    t.equal(s.get('process_job_seconds_sum{queue="mail"}'), 5 * jobs, `${label}: process_job_seconds_sum`)
    t.equal(s.get('process_job_seconds_count{queue="mail"}'), jobs, `${label}: process_job_seconds_count`)
    t.equal(s.get('nodejs_job_bytes_sum'), 100 * jobs, `${label}: nodejs_job_bytes_sum (summary)`)
    t.equal(s.get('nodejs_job_bytes_count'), jobs, `${label}: nodejs_job_bytes_count (summary)`)
    for (const [name, v] of Object.entries(gauges)) t.equal(s.get(name), v, `${label}: ${name} = ${String(v)}`)
    const appSeries = [...s.keys()].filter((k) => /^(process_(jobs|job_|queue)|nodejs_(jobs|job_|workers))/.test(k) && k.includes('pid='))
    t.same(appSeries, [], `${label}: no app series carries a pid label`)
    const pids = live.map((w) => w.pid).sort((x, y) => x - y)
    t.same(pidsOf(s, 'process_cpu_user_seconds_total'), pids, `${label}: the real default metrics, one series per live process`)
    t.same(pidsOf(s, 'nodejs_heap_size_total_bytes'), pids, `${label}: nodejs_heap_size_total_bytes too`)
  }

  check(await scrape(c), 'four live, scraped by the third', 10, {
    process_queue_sum: 10, process_queue_first: 3, process_queue_min: 1, process_queue_max: 4, process_queue_average: 2.5, process_queue_omit: undefined, 'nodejs_workers_busy{pool="a"}': 10
  }, workers)

  await rpc(a, { cmd: 'exit' })
  t.same(await a.exited, { code: 0, signal: null }, 'the first exited')
  b.child.kill('SIGKILL')
  t.same(await b.exited, { code: null, signal: 'SIGKILL' }, 'the second was SIGKILLed')

  const gaugesOfLive = { process_queue_sum: 7, process_queue_min: 3, process_queue_max: 4, process_queue_average: 3.5, process_queue_omit: undefined, 'nodejs_workers_busy{pool="a"}': 7 }
  check(await scrape(d), 'after an exit and a SIGKILL, scraped by the fourth', 10, { ...gaugesOfLive, process_queue_first: 4 }, [c, d])
  check(await scrape(c), 'after an exit and a SIGKILL, scraped by the third', 10, { ...gaugesOfLive, process_queue_first: 3 }, [c, d])
})
