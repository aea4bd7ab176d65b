/** Options are resolved once and frozen; a bad option throws a coded error naming it. */
import t from 'tap'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } from '../lib/metrics'
import { resolveOptions } from '../lib/options'

t.test('defaults, frozen', async (t) => {
  const o = resolveOptions({}, {})
  t.equal(o.enabled, false)
  t.equal(o.endpoint, '/metrics')
  t.equal(o.prefix, '')
  t.equal(o.defaultMetrics, true)
  t.same(o.buckets.latency, DEFAULT_LATENCY_BUCKETS)
  t.same(o.buckets.size, [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864])
  t.same(o.buckets.size, DEFAULT_SIZE_BUCKETS)
  t.equal(o.maxSeriesPerMetric, 10000)
  t.ok(o.registry instanceof Registry)
  t.ok(Object.isFrozen(o) && Object.isFrozen(o.buckets) && Object.isFrozen(o.buckets.latency) && Object.isFrozen(o.exclude))
  t.not(resolveOptions({}, {}).registry, o.registry, 'a new registry per plugin instance')
})

t.test('the user object is not mutated', async (t) => {
  const latency = [0.1, 1]
  const exclude = [/^\/x/g]
  const input = { buckets: { latency }, exclude }
  const o = resolveOptions(input, {})
  t.same(input, { buckets: { latency: [0.1, 1] }, exclude: [/^\/x/g] })
  t.not(o.buckets.latency, latency)
  t.equal((o.exclude[0] as RegExp).flags, '', 'stateful flags dropped from the copy')
})

const bad: Array<[string, unknown, string, RegExp]> = [
  ['unknown key', { endpiont: '/m' }, 'FNM_ERR_OPTION_UNKNOWN', /'endpiont'/],
  ['not an object', 'yes', 'FNM_ERR_OPTION_INVALID', /'options'/],
  ['enabled type', { enabled: 'true' }, 'FNM_ERR_OPTION_INVALID', /'enabled'/],
  ['endpoint without slash', { endpoint: 'metrics' }, 'FNM_ERR_OPTION_INVALID', /'endpoint'.*start with '\/'/],
  ['endpoint type', { endpoint: 42 }, 'FNM_ERR_OPTION_INVALID', /'endpoint'/],
  ['prefix invalid', { prefix: 'my-app' }, 'FNM_ERR_OPTION_INVALID', /'prefix'/],
  ['registry type', { registry: {} }, 'FNM_ERR_OPTION_INVALID', /'registry'/],
  ['defaultMetrics type', { defaultMetrics: 1 }, 'FNM_ERR_OPTION_INVALID', /'defaultMetrics'/],
  ['buckets type', { buckets: [1, 2] }, 'FNM_ERR_OPTION_INVALID', /'buckets'/],
  ['buckets unknown key', { buckets: { latncy: [1] } }, 'FNM_ERR_OPTION_UNKNOWN', /'buckets.latncy'/],
  ['buckets unsorted', { buckets: { latency: [0.1, 0.05] } }, 'FNM_ERR_OPTION_INVALID', /'buckets.latency\[1\]'.*ascending/],
  ['buckets duplicate', { buckets: { size: [16, 16] } }, 'FNM_ERR_OPTION_INVALID', /'buckets.size\[1\]'/],
  ['buckets negative', { buckets: { size: [-1, 16] } }, 'FNM_ERR_OPTION_INVALID', /'buckets.size\[0\]'.*negative/],
  ['buckets empty', { buckets: { latency: [] } }, 'FNM_ERR_OPTION_INVALID', /'buckets.latency'/],
  ['buckets infinite', { buckets: { latency: [1, Infinity] } }, 'FNM_ERR_OPTION_INVALID', /'buckets.latency\[1\]'/],
  ['exclude type', { exclude: '/health' }, 'FNM_ERR_OPTION_INVALID', /'exclude'/],
  ['exclude entry', { exclude: ['/a', 3] }, 'FNM_ERR_OPTION_INVALID', /'exclude\[1\]'/],
  ['maxSeriesPerMetric', { maxSeriesPerMetric: 0 }, 'FNM_ERR_OPTION_INVALID', /'maxSeriesPerMetric'/]
]

for (const [what, opts, code, message] of bad) {
  t.test(`bad option at registration: ${what}`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(netboxMetrics, opts as never) }, { code, message, name: 'NetboxMetricsError' })
  })
}

t.test('coded errors are TypeErrors with a code', async (t) => {
  let caught: unknown
  try { resolveOptions({ endpoint: 'x' }) } catch (err) { caught = err }
  t.ok(caught instanceof TypeError, 'a TypeError')
  t.equal((caught as { code?: string }).code, 'FNM_ERR_OPTION_INVALID')
  t.equal((caught as Error).message, "Invalid option 'endpoint': must start with '/', got \"x\"")
})

t.test('custom buckets are used', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, buckets: { latency: [0.5, 5], size: [100] }, prefix: 'nb_', endpoint: '/prom' })
  app.get('/a', async () => 'a')
  await app.inject('/a')
  const body = (await app.inject('/prom')).body
  t.match(body, /^nb_http_request_duration_seconds_bucket\{method="GET",route="\/a",status_code="200",le="0.5"\} 1$/m)
  t.match(body, /^nb_http_request_duration_seconds_bucket\{method="GET",route="\/a",status_code="200",le="5"\} 1$/m)
  t.match(body, /^nb_http_response_size_bytes_bucket\{method="GET",route="\/a",le="100"\} 1$/m)
  t.notMatch(body, /^http_/m, 'every name prefixed')
  t.equal((await app.inject('/metrics')).statusCode, 404)
})
