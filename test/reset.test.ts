/**
 * prom-client's `registry.resetMetrics()` (apps and test suites call it between cases) zeroes the
 * package's counters and histograms in place, and counting goes on afterwards. Ground truth: a
 * prom-client Counter of the app in the same registry, reset by the same call, and the number of
 * requests the test made.
 */
import t from 'tap'
import Fastify from 'fastify'
import { Counter, Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { lines, scrape, value } from './helpers/scrape'

t.test('registry.resetMetrics() zeroes the families and counting goes on', async (t) => {
  const registry = new Registry()
  const mine = new Counter({ name: 'app_things_total', help: 'the app\'s own counter', registers: [registry] })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, registry })
  const cache = app.metrics.instrumentCache(new Map<string, number>(), { name: 'c' })
  let release: () => void = () => {}
  app.get('/item', async () => { mine.inc(); return 'ok' }) // 2 bytes
  app.get('/hold', async () => { await new Promise<void>((resolve) => { release = resolve }); return 'held' })
  await app.ready()

  for (let i = 0; i < 3; i++) await app.inject('/item')
  cache.set('a', 1)
  cache.get('a')
  const held = app.inject('/hold') // in flight across the reset
  await new Promise((resolve) => setImmediate(resolve))
  let body = await scrape(app)
  t.equal(value(body, 'http_requests_total{method="GET",route="/item",status_code="200"}'), 3)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 1)

  registry.resetMetrics()
  body = await scrape(app)
  t.equal(value(body, 'app_things_total'), 0, 'prom-client\'s own counter is zero')
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/item",status_code="200"} 0'], 'ours too, the series kept at zero')
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 0)
  t.equal(value(body, 'http_request_duration_seconds_count{method="GET",route="/item",status_code="200"}'), 0)
  t.equal(value(body, 'http_request_duration_seconds_bucket{method="GET",route="/item",status_code="200",le="+Inf"}'), 0)
  t.equal(value(body, 'http_request_duration_seconds_sum{method="GET",route="/item",status_code="200"}'), 0)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/item"}'), 0)
  t.equal(value(body, 'cache_get_total{cache="c"}'), 0)
  t.equal(value(body, 'cache_set_total{cache="c"}'), 0)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 1, 'a gauge states what is true now: the held request is still in flight')
  t.match(body, /^fastify_info\{.*\} 1$/m, 'fastify_info stays 1')

  for (let i = 0; i < 2; i++) await app.inject('/item')
  cache.get('a')
  cache.get('b')
  release()
  await held
  body = await scrape(app)
  t.equal(value(body, 'app_things_total'), 2)
  t.equal(value(body, 'http_requests_total{method="GET",route="/item",status_code="200"}'), 2, 'counting goes on after the reset')
  t.equal(value(body, 'http_requests_total{method="GET",route="/hold",status_code="200"}'), 1)
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 2, 'the held request was received before the reset')
  t.equal(value(body, 'http_request_duration_seconds_count{method="GET",route="/item",status_code="200"}'), 2)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/item"}'), 4)
  t.equal(value(body, 'http_response_size_bytes_bucket{method="GET",route="/item",le="16"}'), 2)
  t.equal(value(body, 'cache_get_total{cache="c"}'), 2)
  t.equal(value(body, 'cache_get_hits_total{cache="c"}'), 1)
  t.equal(value(body, 'cache_get_misses_total{cache="c"}'), 1)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0, 'never negative')
})
