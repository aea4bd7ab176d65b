/**
 * Start (created) timestamps, checked from outside against the times this test created and
 * reset each series: the protobuf exposition decoded by protobufjs (`created_timestamp` of every
 * counter, histogram and summary series), and the OpenMetrics `_created` samples (option
 * `createdTimestamps`) read by Debian's python3-prometheus-client strict parser. With both
 * clients: prom-client 15 and `@prometheus-io/client`.
 *
 * The package's own series: exactly when they were created or reset. The app's own series
 * (lib/starts.ts): never after their true start, and only where the package knows one: a series
 * that appears after the app is ready starts at the latest time the package saw it absent; a
 * series present at that first look has none until `registry.resetMetrics()`.
 */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { foldedStart, foldStart, keptStart, nextStarts, sumStart } from '../lib/starts'
import { decodeDelimited, PROMETHEUS_PROTOBUF_ACCEPT } from './helpers/protobuf'
import { noParser, protobufCreated, pythonCreated } from './helpers/starts'
import * as promClient from 'prom-client'
import * as ioClient from '@prometheus-io/client'

const CLIENTS = { 'prom-client': promClient, '@prometheus-io/client': ioClient } as const

for (const [clientName, client] of Object.entries(CLIENTS)) {
  t.test(`${clientName}: starts in protobuf and OpenMetrics, against the times the series began`, async (t) => {
    const registry = new client.Registry()
    const jobs = new client.Counter({ name: 'app_jobs_total', help: 'jobs', labelNames: ['kind'], registers: [registry] })
    const sizes = new client.Histogram({ name: 'app_size_bytes', help: 'sizes', labelNames: ['kind'], buckets: [10], registers: [registry] })
    const waits = new client.Summary({ name: 'app_wait_seconds', help: 'waits', labelNames: ['kind'], percentiles: [0.5], registers: [registry] })
    const level = new client.Gauge({ name: 'app_level', help: 'a gauge', registers: [registry] })
    jobs.inc({ kind: 'early' })
    level.set(3)
    const app = Fastify()
    // The package's first look at the app's metrics is at registration.
    const ready0 = Date.now()
    await app.register(netboxMetrics, { enabled: true, registry, defaultMetrics: false, createdTimestamps: true })
    const ready1 = Date.now()
    app.get('/x', async () => 'x')
    await app.ready()
    t.teardown(async () => await app.close())

    const late0 = Date.now()
    jobs.inc({ kind: 'late' }, 2)
    sizes.observe({ kind: 'late' }, 5)
    waits.observe({ kind: 'late' }, 0.1)
    const req0 = Date.now()
    await app.inject('/x')
    const req1 = Date.now()

    const scrape = async (): Promise<{ pb: Map<string, number | undefined>, om: string }> => {
      const pb = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })
      const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })
      return { pb: protobufCreated(decodeDelimited(pb.rawPayload)), om: om.body }
    }
    const within = (t: Tap.Test, value: number | undefined, from: number, to: number, what: string): void => {
      t.ok(value !== undefined && value >= from && value <= to, `${what}: ${String(value)} within [${from}, ${to}]`)
    }

    const first = await scrape()
    const route = 'method="GET",route="/x",status_code="200"'
    within(t, first.pb.get(`http_requests{${route}}`), req0, req1, 'http_requests_total: when the request was counted')
    within(t, first.pb.get(`http_request_duration_seconds{${route}}`), req0, req1, 'http_request_duration_seconds')
    within(t, first.pb.get('metrics_errors{component="http"}'), 0, ready1, 'metrics_errors_total: exposed at 0 from registration')
    // The app's series that appeared after registration: the time of the package's first look, never after the true start.
    for (const name of ['app_jobs', 'app_size_bytes', 'app_wait_seconds']) {
      within(t, first.pb.get(`${name}{kind="late"}`), ready0, Math.min(ready1, late0), `${name}{kind="late"}`)
    }
    t.ok(first.pb.has('app_jobs{kind="early"}') && first.pb.get('app_jobs{kind="early"}') === undefined, 'a series present at the first look: no start claimed')
    t.notOk([...first.pb.keys()].some((k) => k.startsWith('app_level')), 'gauges have none')
    t.notMatch(first.om, /^app_level_created/m)

    if (noParser === false) {
      const om = pythonCreated(first.om)
      const pbKnown = new Map([...first.pb].filter(([, v]) => v !== undefined))
      t.same(om, pbKnown, 'OpenMetrics _created (Python parser) = protobuf created_timestamp, series by series')
    }

    // registry.resetMetrics(): every series, ours and the app's, starts again then.
    const reset0 = Date.now()
    registry.resetMetrics()
    const reset1 = Date.now()
    jobs.inc({ kind: 'early' })
    sizes.observe({ kind: 'late' }, 1)
    await app.inject('/x')
    const second = await scrape()
    within(t, second.pb.get(`http_requests{${route}}`), reset0, reset1, 'http_requests_total after resetMetrics()')
    within(t, second.pb.get('metrics_errors{component="http"}'), reset0, reset1, 'metrics_errors_total after resetMetrics()')
    within(t, second.pb.get('app_jobs{kind="early"}'), reset0, reset1, 'the app\'s series present at the first look, after resetMetrics()')
    within(t, second.pb.get('app_size_bytes{kind="late"}'), reset0, reset1, 'app_size_bytes after resetMetrics()')
    if (noParser === false) t.same(pythonCreated(second.om), new Map([...second.pb].filter(([, v]) => v !== undefined)), 'the Python parser reads the same')
  })
}

t.test('a registry with default labels: the same starts, every series through get()', async (t) => {
  const registry = new promClient.Registry()
  registry.setDefaultLabels({ service: 'api' })
  const jobs = new promClient.Counter({ name: 'app_jobs_total', help: 'jobs', labelNames: ['kind'], registers: [registry] })
  const app = Fastify()
  const ready0 = Date.now()
  await app.register(netboxMetrics, { enabled: true, registry, defaultMetrics: false, createdTimestamps: true })
  app.get('/x', async () => 'x')
  await app.ready()
  const late0 = Date.now()
  jobs.inc({ kind: 'late' })
  const req0 = Date.now()
  await app.inject('/x')
  const pb = protobufCreated(decodeDelimited((await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload))
  const req1 = Date.now()
  const requests = pb.get('http_requests{method="GET",route="/x",service="api",status_code="200"}')
  t.ok(requests !== undefined && requests >= req0 && requests <= req1, `http_requests_total: ${String(requests)} within [${req0}, ${req1}]`)
  const late = pb.get('app_jobs{kind="late",service="api"}')
  t.ok(late !== undefined && late >= ready0 && late <= late0, `the app's series: ${String(late)} within [${ready0}, ${late0}]`)
  const om = (await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })).body
  t.match(om, /^http_requests_created\{service="api",method="GET",route="\/x",status_code="200"\} \d+\.\d{3}$/m)
  if (noParser === false) t.same(pythonCreated(om), new Map([...pb].filter(([, v]) => v !== undefined)), 'the Python parser reads the same')
  await app.close()
})

t.test('without createdTimestamps: no _created sample; protobuf keeps its starts', async (t) => {
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })
  t.notMatch(om.body, /_created/)
  t.equal(app.metrics.options.createdTimestamps, false)
  const pb = protobufCreated(decodeDelimited((await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload))
  t.type(pb.get('http_requests{method="GET",route="/x",status_code="200"}'), 'number')
  await app.close()
})

t.test('nextStarts: the latest time a series is known to have been zero', async (t) => {
  const m = (entries: Array<[string, number]>): Map<string, number> => new Map(entries)
  const first = nextStarts(undefined, m([['a', 3], ['z', 0]]), 1000, -Infinity)
  t.same([...first.series], [['a', { start: undefined, total: 3 }], ['z', { start: 1000, total: 0 }]], 'present at first sight: unknown, unless at zero')
  const second = nextStarts(first, m([['a', 4], ['b', 1], ['z', 2]]), 2000, -Infinity)
  t.same([...second.series], [['a', { start: undefined, total: 4 }], ['b', { start: 1000, total: 1 }], ['z', { start: 1000, total: 2 }]], 'new since the last collect: that collect')
  const third = nextStarts(second, m([['a', 1], ['b', 2], ['z', 1]]), 3000, -Infinity)
  t.same(third.series.get('a'), { start: undefined, total: 1 }, 'went down without a registry reset: unknown')
  t.same(third.series.get('z'), { start: undefined, total: 1 })
  t.same(third.series.get('b'), { start: 1000, total: 2 })
  const fourth = nextStarts(third, m([['a', 5], ['b', 1]]), 4000, 3500)
  t.same([...fourth.series], [['a', { start: 3500, total: 5 }], ['b', { start: 3500, total: 1 }]], 'a registry reset since the last collect: the reset')
  const fifth = nextStarts(fourth, m([['a', 6], ['b', 2], ['c', 1]]), 5000, 3500)
  t.same([...fifth.series], [['a', { start: 3500, total: 6 }], ['b', { start: 3500, total: 2 }], ['c', { start: 4000, total: 1 }]], 'an old reset does not move them')
})

t.test('sumStart and keptStart: the multiprocess rule', async (t) => {
  t.equal(sumStart([3000, 1000, 2000]), 1000, 'the earliest start of what it sums')
  t.equal(sumStart([1000, undefined]), undefined, 'a part without a start: none')
  t.equal(sumStart([]), undefined)
  t.equal(keptStart(undefined, 2000, 5), 2000)
  t.equal(keptStart({ start: 1000, total: 5 }, 2000, 7), 1000, 'a process starting later does not move it forward')
  t.equal(keptStart({ start: 2000, total: 5 }, 1000, 7), 1000, 'an earlier part moves it back')
  t.equal(keptStart({ start: 1000, total: 5 }, 3000, 2), 3000, 'the sum went down (really restarted): the new start')
  t.equal(keptStart({ start: 1000, total: 5 }, undefined, 7), undefined, 'a part without a start: none')
  t.equal(keptStart({ start: undefined, total: 5 }, 2000, 7), 2000)
  const fold = (parts: Array<number | undefined>): number | undefined => foldedStart(parts.reduce<number>(foldStart, Infinity))
  for (const parts of [[3000, 1000, 2000], [1000, undefined], [undefined, 1000], [], [5], [2000, undefined, 1000]]) {
    t.equal(fold(parts), sumStart(parts), `foldStart, one part at a time, is sumStart: [${parts.map(String).join(', ')}]`)
  }
})
