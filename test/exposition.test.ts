/** The endpoint: GET and HEAD, Prometheus text by default, OpenMetrics when Accept asks, promtool-valid. */
import t from 'tap'
import Fastify from 'fastify'
import { Counter, Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { negotiateFormat, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE } from '../lib/exposition'
import { hasPromtool, promtoolCheck } from './helpers/scrape'

const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2'

t.test('content negotiation', async (t) => {
  t.equal(negotiateFormat(undefined), 'prometheus')
  t.equal(negotiateFormat('*/*'), 'prometheus')
  t.equal(negotiateFormat('text/plain'), 'prometheus')
  t.equal(negotiateFormat(PROMETHEUS_ACCEPT), 'openmetrics', 'what Prometheus sends')
  t.equal(negotiateFormat('application/openmetrics-text'), 'openmetrics')
  t.equal(negotiateFormat('text/plain;q=1,application/openmetrics-text;q=0.5'), 'prometheus')
  t.equal(negotiateFormat('application/openmetrics-text;q=0'), 'prometheus')
})

t.test('GET, HEAD, both formats, foreign metrics in a shared registry', async (t) => {
  const registry = new Registry()
  const mine = new Counter({ name: 'app_jobs_total', help: 'Jobs "done"\nby the app', labelNames: ['kind'], registers: [registry] })
  mine.inc({ kind: 'a\\b"c' }, 2)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, registry })
  app.get('/r', async () => 'r')
  await app.inject('/r')

  const text = await app.inject('/metrics')
  t.equal(text.statusCode, 200)
  t.equal(text.headers['content-type'], PROMETHEUS_CONTENT_TYPE)
  t.equal(text.headers['cache-control'], 'no-store')
  t.match(text.body, /^# HELP app_jobs_total Jobs "done"\\nby the app$/m)
  t.match(text.body, /^app_jobs_total\{kind="a\\\\b\\"c"\} 2$/m, 'label values escaped')
  t.match(text.body, /^process_cpu_user_seconds_total \d/m, 'default metrics on by default')
  t.match(text.body, /^http_requests_total\{method="GET",route="\/r",status_code="200"\} 1$/m)

  const head = await app.inject({ method: 'HEAD', url: '/metrics' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers['content-type'], PROMETHEUS_CONTENT_TYPE)

  const om = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } })
  t.equal(om.headers['content-type'], OPENMETRICS_CONTENT_TYPE)
  t.match(om.body, /^# TYPE http_requests counter$/m)
  t.match(om.body, /^http_requests_total\{method="GET",route="\/r",status_code="200"\} 1$/m)
  t.match(om.body, /^# TYPE app_jobs counter$/m)
  t.match(om.body, /^app_jobs_total\{kind="a\\\\b\\"c"\} 2$/m)
  t.ok(om.body.endsWith('# EOF\n'))
  // The registry itself is left as it was (prom-client renames counters in OpenMetrics mode).
  t.equal(registry.getSingleMetric('app_jobs_total')?.name, 'app_jobs_total')

  // prom-client's own JSON view agrees with our rendering.
  const json = await registry.getMetricsAsJSON()
  const requests = json.find((m) => m.name === 'http_requests_total')
  t.same(requests?.values, [{ labels: { method: 'GET', route: '/r', status_code: '200' }, value: 1 }])

  if (hasPromtool()) t.same(promtoolCheck(text.body), [], 'promtool check metrics passes')
})

t.test('a collector that throws is counted and the rest is served', async (t) => {
  const registry = new Registry()
  // eslint-disable-next-line no-new
  new Counter({ name: 'bad_total', help: 'throws', registers: [registry], collect () { throw new Error('collector down') } })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, registry, defaultMetrics: false })
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.notMatch(res.body, /bad_total/)
  t.match(res.body, /^metrics_errors_total\{component="collector"\} 1$/m)
})
