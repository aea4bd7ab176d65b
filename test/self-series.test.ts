/**
 * The package's own alert series (`metrics_errors_total`, `metrics_series_dropped_total`) are
 * exposed at 0 from registration, one per error component and one per capped family, so that
 * Prometheus's increase() sees the first error and the first dropped series (an absent series
 * that appears at 1 is no increase). Ground truth: the families the registry really holds.
 */
import t from 'tap'
import Fastify from 'fastify'
import { Counter, Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { isMetricFamily } from '../lib/families'
import { ERROR_COMPONENTS } from '../lib/metrics'
import { lines, scrape, value } from './helpers/scrape'

/** Names of this package's families in a registry, except its own uncapped counters. */
function packageFamilies (registry: Registry): string[] {
  return registry.getMetricsAsArray().filter((m) => isMetricFamily(m)).map((m) => m.name).filter((n) => !n.startsWith('metrics_')).sort()
}

t.test('every component and every family at 0 from the start; the first event counts 1', async (t) => {
  const registry = new Registry()
  let failCollect = false
  // eslint-disable-next-line no-new
  new Counter({ name: 'app_flaky_total', help: 'a collector that fails on demand', registers: [registry], collect () { if (failCollect) throw new Error('down') } })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, registry, maxSeriesPerMetric: 1 })
  app.get('/a', async () => 'a')
  app.get('/b', async () => 'b')
  await app.ready()

  let body = await scrape(app)
  t.same(lines(body, 'metrics_errors_total'), ERROR_COMPONENTS.map((c) => `metrics_errors_total{component="${c}"} 0`).sort(), 'one series per component, at 0')
  t.same(ERROR_COMPONENTS, ['http', 'orm', 'cache', 'collector', 'auth', 'endpoint', 'multiprocess'])
  const families = packageFamilies(registry)
  t.ok(families.includes('http_requests_total') && families.includes('fastify_info'), families.join(', '))
  t.same(lines(body, 'metrics_series_dropped_total'), families.map((f) => `metrics_series_dropped_total{metric="${f}"} 0`).sort(), 'one series per family, at 0')

  // A family created later (a cache) brings its series along.
  app.metrics.instrumentCache(new Map(), { name: 'c' }).get('x')
  body = await scrape(app)
  t.equal(value(body, 'metrics_series_dropped_total{metric="cache_get_total"}'), 0)
  t.same(lines(body, 'metrics_series_dropped_total').length, packageFamilies(registry).length)

  // The first dropped series and the first error: 0 -> 1.
  await app.inject('/a')
  await app.inject('/b') // a second label set beyond maxSeriesPerMetric: 1
  failCollect = true
  await scrape(app) // the collector throws: counted
  failCollect = false
  body = await scrape(app)
  t.equal(value(body, 'metrics_series_dropped_total{metric="http_requests_total"}'), 1)
  t.equal(value(body, 'metrics_errors_total{component="collector"}'), 1)
  t.equal(value(body, 'metrics_errors_total{component="http"}'), 0)
})

t.test('OpenMetrics and a prefix: the same zeros', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, prefix: 'nb_' })
  const body = await scrape(app, '/metrics', { accept: 'application/openmetrics-text; version=1.0.0' })
  t.equal(value(body, 'nb_metrics_errors_total{component="orm"}'), 0)
  t.equal(value(body, 'nb_metrics_series_dropped_total{metric="nb_http_requests_total"}'), 0)
})
