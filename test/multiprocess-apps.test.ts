/**
 * Multiprocess mode with several apps and the app's own metrics, in one process: two apps
 * sharing the directory expose no duplicate series (default metrics once per process); the
 * app's own Counter, Histogram and Summary survive their store and stay monotonic, its Gauge
 * counts (by its aggregator) while its process lives; collect() callbacks run for scrapes only; render() after
 * close() does not count the final snapshot twice; a store acquired while the previous one of
 * the same registry is still handing over does not count the hand-over twice.
 */
import t from 'tap'
import Fastify from 'fastify'
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client'
import netboxMetrics from '../lib/index'
import { MetricSet } from '../lib/metrics'
import { MultiprocessStore } from '../lib/multiprocess'
import { duplicateSeries, processFiles, requestsTotal, sleep, tempDir } from './helpers/multiprocess'
import { lines, samples, scrape } from './helpers/scrape'

async function app (dir: string, extra: Record<string, unknown> = {}): Promise<ReturnType<typeof Fastify>> {
  const a = Fastify()
  await a.register(netboxMetrics, { enabled: true, multiprocess: { dir, flushIntervalMs: 50 }, ...extra })
  a.get('/x', async () => 'x')
  await a.ready()
  return a
}

t.test('two apps in one process, default metrics on: no duplicate series', async (t) => {
  const dir = tempDir(t)
  const api = await app(dir)
  const admin = await app(dir)
  t.teardown(async () => { await api.close(); await admin.close() })
  await api.inject('/x')
  await admin.inject('/x')
  await sleep(200)
  for (const [name, a] of [['api', api], ['admin', admin]] as const) {
    const body = await scrape(a)
    t.same(duplicateSeries(body), [], `${name}: every series once`)
    t.same(lines(body, 'process_cpu_user_seconds_total').map((l) => l.slice(0, l.lastIndexOf(' '))), [`process_cpu_user_seconds_total{pid="${process.pid}"}`], `${name}: the process's default metrics once, with its pid`)
    t.equal(requestsTotal(body, '/x'), 2, `${name}: both apps' requests (one directory, one aggregate)`)
  }
})

t.test('the app\'s own Counter, Histogram and Summary survive their store; its Gauge lives with it', async (t) => {
  const dir = tempDir(t)
  const observer = await app(dir, { defaultMetrics: false })
  t.teardown(async () => { await observer.close() })

  const define = (registry: Registry): { jobs: Counter, took: Histogram, size: Summary, queue: Gauge } => ({
    jobs: new Counter({ name: 'jobs_done_total', help: 'Jobs done.', labelNames: ['queue'], registers: [registry] }),
    took: new Histogram({ name: 'job_seconds', help: 'Job duration.', labelNames: ['queue'], buckets: [0.1, 1], registers: [registry] }),
    size: new Summary({ name: 'job_bytes', help: 'Job size.', registers: [registry] }),
    queue: new Gauge({ name: 'queue_depth', help: 'Jobs waiting.', registers: [registry] })
  })

  const worker = await app(dir, { defaultMetrics: false })
  const m = define(worker.metrics.registry)
  m.jobs.inc({ queue: 'mail' }, 5)
  for (const v of [0.05, 0.5, 5]) m.took.observe({ queue: 'mail' }, v)
  m.size.observe(100)
  m.size.observe(300)
  m.queue.set(3)
  await sleep(200)
  let s = samples(await scrape(observer))
  t.equal(s.get('jobs_done_total{queue="mail"}'), 5, 'the app\'s counter, from the other store\'s file')
  t.same(['0.1', '1', '+Inf'].map((le) => s.get(`job_seconds_bucket{queue="mail",le="${le}"}`)), [1, 2, 3])
  t.equal(s.get('job_seconds_sum{queue="mail"}'), 5.55)
  t.equal(s.get('job_seconds_count{queue="mail"}'), 3)
  t.equal(s.get('job_bytes_sum'), 400)
  t.equal(s.get('job_bytes_count'), 2)
  t.equal(s.get('queue_depth'), 3, 'the app\'s gauge, summed over live processes (its aggregator, prom-client\'s default: sum)')

  await worker.close()
  t.equal(processFiles(dir).length, 1, 'the closed store\'s file was merged into the archive')
  s = samples(await scrape(observer))
  t.equal(s.get('jobs_done_total{queue="mail"}'), 5, 'the counter survives its store (was 0 before: the app\'s metrics vanished with their process)')
  t.equal(s.get('job_seconds_bucket{queue="mail",le="+Inf"}'), 3)
  t.equal(s.get('job_seconds_sum{queue="mail"}'), 5.55)
  t.equal(s.get('job_bytes_count'), 2)
  t.equal([...s.keys()].filter((k) => k.startsWith('queue_depth')).length, 0, 'the gauge of a store that is gone is gone')

  // A restarted worker (a new registry) counts on from the archived totals.
  const again = await app(dir, { defaultMetrics: false })
  t.teardown(async () => { await again.close() })
  const m2 = define(again.metrics.registry)
  m2.jobs.inc({ queue: 'mail' }, 2)
  m2.took.observe({ queue: 'mail' }, 0.5)
  const body = await scrape(again)
  s = samples(body)
  t.equal(s.get('jobs_done_total{queue="mail"}'), 7, 'monotonic across restarts')
  t.same(['0.1', '1', '+Inf'].map((le) => s.get(`job_seconds_bucket{queue="mail",le="${le}"}`)), [1, 3, 4])
  t.match(body, /# TYPE job_bytes summary\n/, 'a Summary stays a summary (its _sum and _count)')
})

t.test('collect() callbacks of the app\'s metrics run for scrapes only, in the scraping process', async (t) => {
  const dir = tempDir(t)
  const a = await app(dir, { defaultMetrics: false })
  t.teardown(async () => { await a.close() })
  let calls = 0
  // eslint-disable-next-line no-new
  new Gauge({ name: 'devices', help: 'Devices in the database.', registers: [a.metrics.registry], collect () { calls++; this.set(42) } })
  await sleep(500) // about ten flush ticks of 50 ms
  t.equal(calls, 0, 'no call on the flush ticks (there were 10 in 500 ms before)')
  const s = samples(await scrape(a))
  t.equal(calls, 1, 'one call per scrape')
  t.equal(s.get('devices'), 42, 'the scraping process\'s value, without a pid label')
})

t.test('render() after close() counts the final snapshot once', async (t) => {
  const dir = tempDir(t)
  const a = await app(dir, { defaultMetrics: false })
  for (let i = 0; i < 3; i++) await a.inject('/x')
  await a.close()
  t.equal(requestsTotal(await a.metrics.render(), '/x'), 3, '3 requests, not 6')
  t.equal(requestsTotal(await a.metrics.render(), '/x'), 3, 'and again')
})

t.test('a store acquired while the previous one of its registry is handing over does not count twice', async (t) => {
  const dir = tempDir(t)
  const registry = new Registry()
  const metrics = new MetricSet({ registry, prefix: '', buckets: { latency: [0.1], size: [100] }, maxSeriesPerMetric: 100 })
  const opts = { registry, prefix: '', config: { dir, flushIntervalMs: 3_600_000, source: 'test' }, onError: (_c: string, err: unknown) => { throw err } }
  const requests = metrics.get('httpRequests').child('GET', '/x', '200')
  const first = MultiprocessStore.acquire(opts)
  requests.value += 3
  const flushing = first.flush(false) // the chain is busy
  const releasing = first.release() // closed, awaiting the chain
  const second = MultiprocessStore.acquire(opts)
  t.not(second, first, 'a new store')
  await Promise.all([flushing, releasing])
  requests.value += 2
  t.equal(requestsTotal(await second.render('prometheus'), '/x'), 5, '5 requests (8 before: the hand-over counted again)')
  await second.release()
  t.equal(requestsTotal(await second.render('prometheus'), '/x'), 5, 'all in the archive, once')
})

t.test('an app metric of a type other than counter, gauge, histogram and summary stays per live process', async (t) => {
  const dir = tempDir(t)
  const a = await app(dir, { defaultMetrics: false })
  t.teardown(async () => { await a.close() })
  const values = { name: 'legacy_things', help: 'A hand-made metric object.', type: 'untyped', aggregator: 'sum', values: [{ labels: { kind: 'x' }, value: 4 }] }
  a.metrics.registry.registerMetric({ name: values.name, help: values.help, type: 'untyped', aggregator: 'sum', get: async () => values } as never)
  const s = samples(await scrape(a))
  t.equal(s.get(`legacy_things{pid="${process.pid}",kind="x"}`), 4, 'as it is, with the process\'s pid')
})
