/**
 * Exemplars (`exemplars: true`): the trace of a request, from its W3C traceparent header, on its
 * duration observation, in OpenMetrics text (checked by Debian's python3-prometheus-client
 * parser, which reads exemplars) and in protobuf (decoded by protobufjs). The traceparent cases
 * are the W3C Trace Context specification's. With an OpenTelemetry context manager installed, the
 * active span wins over the header, and SQL statements (real PostgreSQL through MikroORM) carry
 * the span active around them.
 */
import t from 'tap'
import Fastify from 'fastify'
import { spawnSync } from 'node:child_process'
import netboxMetrics from '../lib/index'
import { activeSpanTrace, parseTraceparent } from '../lib/exemplars'
import { decodeDelimited, PROMETHEUS_PROTOBUF_ACCEPT } from './helpers/protobuf'
import { initOrm } from './helpers/orm-suite'
import { startDatabase } from '../examples/db'

const PYTHON = process.env.FNM_PYTHON ?? '/usr/bin/python3'
const noParser = spawnSync(PYTHON, ['-c', 'import prometheus_client.openmetrics.parser']).status === 0
  ? false
  : 'Debian\'s python3-prometheus-client is not installed (.ci/run installs it)'

const trace = (i: number): string => `4bf92f3577b34da6a3ce929d0e0e${String(4700 + i)}`
const span = (i: number): string => `00f067aa0ba9${String(1000 + i)}`
const header = (i: number): string => `00-${trace(i)}-${span(i)}-01`

t.test('traceparent parsing follows W3C Trace Context', async (t) => {
  t.same(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' })
  t.same(parseTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds'), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' }, 'a later version may add fields')
  for (const bad of [
    undefined, '', 'garbage',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff is invalid
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero parent id
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // version 00 has four fields
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01' // short trace id
  ]) t.equal(parseTraceparent(bad), undefined, String(bad))
  t.equal(activeSpanTrace(), undefined, 'no active OpenTelemetry span: the header decides')
})

async function app (t: any, exemplars: boolean): Promise<import('fastify').FastifyInstance> {
  const a = Fastify()
  t.teardown(() => a.close())
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, exemplars, nativeHistograms: true })
  a.get('/a', async () => 'a')
  for (let i = 0; i < 3; i++) await a.inject({ url: '/a', headers: { traceparent: header(i) } })
  await a.inject('/a') // no trace: no exemplar
  return a
}

t.test('OpenMetrics: the latest trace of a bucket, accepted by the Python parser', { skip: noParser }, async (t) => {
  const a = await app(t, true)
  const body = (await a.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).body
  const lines = body.split('\n').filter((l) => l.startsWith('http_request_duration_seconds_bucket') && l.includes(' # '))
  t.ok(lines.length >= 1, 'a bucket line has an exemplar')
  t.match(lines.join('\n'), new RegExp(`# \\{trace_id="${trace(2)}",span_id="${span(2)}"\\} [0-9.e-]+ [0-9]+\\.[0-9]{3}`), 'the latest trace')
  t.notMatch(body, /http_request_size_bytes_bucket.* # /, 'size histograms carry none')
  const script = `
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        if s.exemplar is not None:
            out.append([s.name, s.exemplar.labels['trace_id'], s.exemplar.labels['span_id'], s.exemplar.value])
print(json.dumps(out))
`
  const r = spawnSync(PYTHON, ['-c', script], { input: body, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const parsed = JSON.parse(r.stdout) as Array<[string, string, string, number]>
  t.ok(parsed.length >= 1 && parsed.every(([name]) => name === 'http_request_duration_seconds_bucket'))
  t.ok(parsed.some(([, tid, sid]) => tid === trace(2) && sid === span(2)))
  t.ok(parsed.every(([, tid]) => [trace(0), trace(1), trace(2)].includes(tid)))
})

t.test('protobuf: exemplars on the classic buckets and beside the native ones', async (t) => {
  const a = await app(t, true)
  const pb = decodeDelimited((await a.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload)
  const h = pb.find((f) => f.name === 'http_request_duration_seconds').metric[0].histogram
  const onBuckets = h.bucket.filter((b: any) => b.exemplar !== undefined).map((b: any) => b.exemplar)
  t.ok(onBuckets.length >= 1)
  for (const e of onBuckets) {
    t.same(e.label.map((l: any) => l.name), ['trace_id', 'span_id'])
    t.ok([trace(0), trace(1), trace(2)].includes(e.label[0].value))
    t.ok(e.value > 0 && e.value < 10)
    t.ok(Math.abs(e.timestamp.seconds * 1000 - Date.now()) < 60000, 'timestamped now')
  }
  t.same(h.exemplars.map((e: any) => e.label[0].value).sort(), onBuckets.map((e: any) => e.label[0].value).sort(), 'the native histogram carries the same exemplars')
})

t.test('exemplars off: none, whatever the headers', async (t) => {
  const a = await app(t, false)
  const body = (await a.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).body
  t.notMatch(body, / # \{/)
  const pb = decodeDelimited((await a.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload)
  const h = pb.find((f) => f.name === 'http_request_duration_seconds').metric[0].histogram
  t.notOk(h.bucket.some((b: any) => b.exemplar !== undefined))
})

/** Installs a context manager over AsyncLocalStorage (what @opentelemetry/context-async-hooks provides) for one test. */
async function openTelemetry (t: any): Promise<typeof import('@opentelemetry/api')> {
  // @opentelemetry/api is installed here (prom-client depends on it).
  const api = await import('@opentelemetry/api')
  const { AsyncLocalStorage } = await import('node:async_hooks')
  const storage = new AsyncLocalStorage<import('@opentelemetry/api').Context>()
  const manager: import('@opentelemetry/api').ContextManager = {
    active: () => storage.getStore() ?? api.ROOT_CONTEXT,
    with: (ctx, fn, thisArg, ...args) => storage.run(ctx, () => fn.call(thisArg, ...args)),
    bind: (_ctx, target) => target,
    enable () { return this },
    disable () { return this }
  }
  t.ok(api.context.setGlobalContextManager(manager))
  t.teardown(() => api.context.disable())
  return api
}

const otelTrace = 'abcdef0123456789abcdef0123456789'
const otelSpan = '0123456789abcdef'

t.test('the active OpenTelemetry span wins over traceparent', async (t) => {
  const api = await openTelemetry(t)
  const a = Fastify()
  t.teardown(() => a.close())
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, exemplars: true })
  a.get('/a', async () => 'a')
  const ctx = api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: otelTrace, spanId: otelSpan, traceFlags: api.TraceFlags.SAMPLED })
  await api.context.with(ctx, async () => {
    t.same(activeSpanTrace(), { traceId: otelTrace, spanId: otelSpan })
    await a.inject({ url: '/a', headers: { traceparent: header(0) } })
  })
  const body = (await a.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).body
  t.match(body, new RegExp(`http_request_duration_seconds_bucket\\{[^}]*\\} 1 # \\{trace_id="${otelTrace}",span_id="${otelSpan}"\\}`), 'the span\'s ids, not the header\'s')
})

t.test('SQL statements carry the active span as exemplar (real PostgreSQL)', async (t) => {
  const api = await openTelemetry(t)
  const db = await startDatabase()
  const lib = require('@mikro-orm/postgresql')
  const orm = await initOrm(lib, db.url)
  const a = Fastify()
  t.teardown(async () => {
    await a.close()
    await orm.close(true)
    await db.stop()
  })
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, exemplars: true, orm })
  const ctx = api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: otelTrace, spanId: otelSpan, traceFlags: api.TraceFlags.SAMPLED })
  await api.context.with(ctx, async () => {
    await orm.em.fork().getConnection().execute('select 1')
  })
  await orm.em.fork().getConnection().execute('select 2') // no active span: no exemplar
  const pb = decodeDelimited((await a.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload)
  const select = pb.find((f) => f.name === 'db_query_duration_seconds').metric.find((m: any) => m.label.some((l: any) => l.name === 'operation' && l.value === 'select'))
  t.equal(select.histogram.sampleCount, 2)
  const exemplars = select.histogram.bucket.filter((b: any) => b.exemplar !== undefined).map((b: any) => b.exemplar.label.map((l: any) => l.value))
  t.same(exemplars, [[otelTrace, otelSpan]], 'one exemplar, from the span active around the statement')
})
