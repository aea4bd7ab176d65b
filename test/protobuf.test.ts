/**
 * The protobuf exposition (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
 * encoding=delimited`), decoded by an independent decoder: protobufjs reading a vendored copy of
 * Prometheus's client_model metrics.proto. Every family of the registry, the package's own and
 * the app's prom-client metrics, must carry exactly the values the text exposition shows, and
 * the values the test itself put in.
 */
import t from 'tap'
import Fastify from 'fastify'
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client'
import netboxMetrics from '../lib/index'
import { negotiateFormat, PROTOBUF_CONTENT_TYPE } from '../lib/exposition'
import { ProtoWriter, varintSize, zigzag } from '../lib/protobuf'
import { decodeDelimited, PROMETHEUS_PROTOBUF_ACCEPT, protobufSamples, textSamples } from './helpers/protobuf'


t.test('content negotiation picks protobuf only for delimited MetricFamily', async (t) => {
  t.equal(negotiateFormat(PROMETHEUS_PROTOBUF_ACCEPT), 'protobuf')
  t.equal(negotiateFormat('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text'), 'prometheus')
  t.equal(negotiateFormat('application/vnd.google.protobuf;proto=other.Message;encoding=delimited'), 'prometheus')
  t.equal(negotiateFormat('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.1,text/plain;q=0.5'), 'prometheus')
  t.equal(negotiateFormat('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'), 'protobuf')
})

t.test('the writer: varints, zigzag and nested lengths of every size', async (t) => {
  t.same([0, 1, 127, 128, 16383, 16384, 2 ** 32, 2 ** 53 - 1].map(varintSize), [1, 1, 1, 2, 2, 3, 5, 8])
  t.same([0, -1, 1, -2, 2 ** 40, -(2 ** 40)].map(zigzag), [0, 1, 2, 3, 2 ** 41, 2 ** 41 - 1])
  // A string field of every length around the one-, two- and three-byte length boundaries.
  for (const n of [0, 1, 125, 126, 127, 128, 16380, 16381, 16382, 16383, 16384, 70000]) {
    const w = new ProtoWriter(4)
    const family = w.begin()
    w.string(1, 'x'.repeat(n))
    w.end(family)
    const [decoded] = decodeDelimited(w.toBuffer())
    t.equal(decoded.name.length, n, `name of ${n} bytes`)
  }
})

t.test('every family of the registry, decoded by protobufjs, has the text exposition\'s values', async (t) => {
  const registry = new Registry()
  const jobs = new Counter({ name: 'app_jobs_total', help: 'Jobs "done"\nby the app', labelNames: ['kind'], registers: [registry] })
  jobs.inc({ kind: 'a\\b"c' }, 2)
  jobs.inc({ kind: 'plain' }, 5)
  const queue = new Gauge({ name: 'app_queue_depth', help: 'Queue depth', labelNames: ['queue'], registers: [registry] })
  queue.set({ queue: 'mail' }, 7.5)
  queue.set({ queue: 'sms' }, -3)
  const sizes = new Histogram({ name: 'app_payload_bytes', help: 'Payload sizes', labelNames: ['kind'], buckets: [1, 1000], registers: [registry] })
  for (const v of [0.5, 5, 5000]) sizes.observe({ kind: 'upload' }, v)
  const latency = new Summary({ name: 'app_task_seconds', help: 'Task time', percentiles: [0.5, 0.9], registers: [registry] })
  latency.observe(0.2)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, registry, defaultMetrics: false })
  app.get('/items/:id', async () => 'ok')
  app.get('/fail', async () => { throw new Error('no') })
  for (let i = 0; i < 3; i++) await app.inject('/items/1')
  await app.inject('/fail')

  const pb = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })
  t.equal(pb.statusCode, 200)
  t.equal(pb.headers['content-type'], PROTOBUF_CONTENT_TYPE)
  const text = await app.inject('/metrics')
  const families = decodeDelimited(pb.rawPayload)
  t.same(families.map((f) => f.name).sort(), registry.getMetricsAsArray().map((m) => m.name).sort(), 'one MetricFamily per metric of the registry')

  // Exact values the test put in, read from the decoded messages.
  const byName = new Map(families.map((f) => [f.name, f]))
  const jobsFamily = byName.get('app_jobs_total')!
  t.equal(jobsFamily.type, 'COUNTER')
  t.equal(jobsFamily.help, 'Jobs "done"\nby the app', 'help as written, not escaped')
  t.same(jobsFamily.metric.map((m: any) => [m.label[0].value, m.counter.value]), [['a\\b"c', 2], ['plain', 5]])
  t.same(byName.get('app_queue_depth')!.metric.map((m: any) => [m.label[0].value, m.gauge.value]), [['mail', 7.5], ['sms', -3]])
  const h = byName.get('app_payload_bytes')!
  t.equal(h.type, 'HISTOGRAM')
  t.same(h.metric[0].label, [{ name: 'kind', value: 'upload' }])
  t.same(h.metric[0].histogram.bucket.map((b: any) => [b.upperBound, b.cumulativeCount]), [[1, 1], [1000, 2]])
  t.equal(h.metric[0].histogram.sampleCount, 3)
  t.equal(h.metric[0].histogram.sampleSum, 5005.5)
  const s = byName.get('app_task_seconds')!
  t.equal(s.type, 'SUMMARY')
  t.same(s.metric[0].summary, { sampleCount: 1, sampleSum: 0.2, quantile: [{ quantile: 0.5, value: 0.2 }, { quantile: 0.9, value: 0.2 }] })
  const requests = byName.get('http_requests_total')!
  t.same(requests.metric.map((m: any) => [m.label.map((l: any) => l.value).join(' '), m.counter.value]).sort(), [['GET /fail 500', 1], ['GET /items/:id 200', 3]])
  const duration = byName.get('http_request_duration_seconds')!
  t.equal(duration.type, 'HISTOGRAM')
  t.same(duration.metric.map((m: any) => m.histogram.sampleCount).sort(), [1, 3])
  t.equal(duration.metric[0].histogram.bucket.length, 18, 'the 18 classic buckets, +Inf implied by the count')
  t.notOk('schema' in duration.metric[0].histogram, 'no native fields when native histograms are off')
  const info = byName.get('fastify_info')!
  t.equal(info.type, 'GAUGE', 'info-style gauge')
  t.same(info.metric[0].label.map((l: any) => l.name), ['fastify_version', 'node_version', 'plugin_version'])
  t.equal(info.metric[0].gauge.value, 1)
  t.equal(info.metric[0].label[1].value, process.versions.node)

  // Every sample of every family, against the text exposition.
  t.same(Object.fromEntries(protobufSamples(families)), Object.fromEntries(textSamples(text.body)), 'protobuf and text carry the same samples')
})

t.test('default metrics and registry default labels reach the protobuf exposition', async (t) => {
  const registry = new Registry()
  registry.setDefaultLabels({ instance_group: 'blue' })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, registry })
  await app.inject('/nothing')
  const families = decodeDelimited((await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload)
  const names = families.map((f) => f.name)
  t.ok(names.includes('process_cpu_user_seconds_total'))
  t.ok(names.includes('nodejs_eventloop_lag_seconds'))
  const gc = families.find((f) => f.name === 'nodejs_gc_duration_seconds')
  t.equal(gc?.type, 'HISTOGRAM')
  const without = families.flatMap((f) => (f.metric ?? []).filter((m: any) => !m.label.some((l: any) => l.name === 'instance_group' && l.value === 'blue')).map(() => f.name))
  t.same(without, [], 'every series has the default label')
})

t.test('gzip applies to the protobuf exposition too', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true })
  const res = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT, 'accept-encoding': 'gzip' } })
  t.equal(res.headers['content-encoding'], 'gzip')
  const { gunzipSync } = await import('node:zlib')
  t.ok(decodeDelimited(gunzipSync(res.rawPayload)).length > 10)
})

t.test('the shared-directory mode answers protobuf with the same samples as text', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'fnm-protobuf-mp-'))
  const registry = new Registry()
  const latency = new Summary({ name: 'app_task_seconds', help: 'Task time', labelNames: ['kind'], registers: [registry] })
  latency.observe({ kind: 'x' }, 0.25)
  latency.observe({ kind: 'x' }, 0.5)
  const jobs = new Counter({ name: 'app_jobs_total', help: 'Jobs', registers: [registry] })
  jobs.inc(4)
  const app = Fastify()
  t.teardown(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  await app.register(netboxMetrics, { enabled: true, registry, defaultMetrics: false, multiprocess: { dir } })
  app.get('/a', async () => 'a')
  for (let i = 0; i < 3; i++) await app.inject('/a')
  const pb = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })
  t.equal(pb.headers['content-type'], PROTOBUF_CONTENT_TYPE)
  const families = decodeDelimited(pb.rawPayload)
  const text = await app.inject('/metrics')
  t.same(Object.fromEntries(protobufSamples(families)), Object.fromEntries(textSamples(text.body)), 'protobuf and text carry the same samples')
  const summary = families.find((f) => f.name === 'app_task_seconds')
  t.equal(summary?.type, 'SUMMARY')
  t.same(summary?.metric[0].summary, { sampleCount: 2, sampleSum: 0.75, quantile: [] }, 'summed _sum and _count (no quantiles across processes)')
  const requests = families.find((f) => f.name === 'http_requests_total')
  t.equal(requests?.metric.find((m: any) => m.label.some((l: any) => l.value === '/a'))?.counter.value, 3)
})
