/** Excluded requests appear in no HTTP family: the endpoint, config.metrics false, the exclude option. */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { lines, scrape } from './helpers/scrape'

t.test('endpoint, per-route opt-out and the exclude option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, exclude: ['/internal/ping', /^\/debug\//] })
  app.get('/health', { config: { metrics: false } }, async () => 'ok')
  app.get('/internal/ping', async () => 'pong')
  app.get('/debug/:what', async () => 'dbg')
  app.get('/counted', async () => 'yes')
  for (let i = 0; i < 3; i++) {
    await app.inject('/health')
    await app.inject('/internal/ping')
    await app.inject('/debug/vars')
    await app.inject('/metrics')
    await app.inject({ method: 'HEAD', url: '/metrics' })
  }
  await app.inject('/counted')
  const body = await scrape(app)
  for (const name of ['http_requests_received_total', 'http_requests_total', 'http_requests_in_flight']) {
    t.notMatch(lines(body, name).join('\n'), /health|internal|debug|metrics/, `${name} has no excluded route`)
  }
  t.same(lines(body, 'http_requests_received_total'), ['http_requests_received_total{method="GET"} 1'])
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/counted",status_code="200"} 1'])
  t.notMatch(body, /route="\/(health|metrics|internal|debug)/)
})

t.test('config.metrics must be a boolean', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  t.throws(() => app.get('/x', { config: { metrics: 'no' as unknown as boolean } }, async () => 'x'), { code: 'FNM_ERR_ROUTE_CONFIG_INVALID', message: /GET \/x/ })
})
