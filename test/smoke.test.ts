import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'

t.test('smoke', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/a', async () => 'ok')
  await app.inject('/a')
  const r = await app.inject('/metrics')
  t.match(r.body, /http_requests_total\{method="GET",route="\/a",status_code="200"\} 1\n/)
})
