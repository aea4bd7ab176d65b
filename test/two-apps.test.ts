/** Two Fastify apps in one process never collide; a shared registry adds both up. */
import t from 'tap'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { value, scrape } from './helpers/scrape'

t.test('own registry per instance', async (t) => {
  const a = Fastify()
  const b = Fastify()
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  await a.register(netboxMetrics, { enabled: true })
  await b.register(netboxMetrics, { enabled: true })
  a.get('/x', async () => 'a')
  b.get('/x', async () => 'b')
  await a.inject('/x')
  await a.inject('/x')
  await b.inject('/x')
  t.not(a.metrics.registry, b.metrics.registry)
  t.equal(value(await scrape(a), 'http_requests_total{method="GET",route="/x",status_code="200"}'), 2)
  t.equal(value(await scrape(b), 'http_requests_total{method="GET",route="/x",status_code="200"}'), 1)
})

t.test('one registry shared by two apps', async (t) => {
  const registry = new Registry()
  const a = Fastify()
  const b = Fastify()
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  await a.register(netboxMetrics, { enabled: true, registry })
  await b.register(netboxMetrics, { enabled: true, registry })
  a.get('/x', async () => 'a')
  b.get('/x', async () => 'b')
  await a.inject('/x')
  await b.inject('/x')
  t.equal(value(await scrape(a), 'http_requests_total{method="GET",route="/x",status_code="200"}'), 2)
})

t.test('a foreign metric holding one of our names is a coded error', async (t) => {
  const registry = new Registry()
  const { Counter } = await import('prom-client')
  // eslint-disable-next-line no-new
  new Counter({ name: 'http_requests_total', help: 'theirs', registers: [registry] })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(netboxMetrics, { enabled: true, registry }) }, { code: 'FNM_ERR_METRIC_CONFLICT' })
})
