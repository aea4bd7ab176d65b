/** The on/off switch: the enabled option, METRICS_ENABLED, and what "off" means. */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { enabledFromEnv } from '../lib/options'

t.test('METRICS_ENABLED values, as NetBox reads them', async (t) => {
  for (const v of ['true', 'TRUE', 'True', '1', 'yes', 'YES', 'on', 'On', ' on ']) t.equal(enabledFromEnv({ METRICS_ENABLED: v }), true, JSON.stringify(v))
  for (const v of ['false', '0', 'no', 'off', 'OFF', '', '  ']) t.equal(enabledFromEnv({ METRICS_ENABLED: v }), false, JSON.stringify(v))
  for (const v of ['enabled', '2', 'tru', 'y']) t.throws(() => enabledFromEnv({ METRICS_ENABLED: v }), { code: 'FNM_ERR_ENV_INVALID' }, `${JSON.stringify(v)} is refused (test/environment.test.ts)`)
  t.equal(enabledFromEnv({}), false, 'off by default')
})

t.test('off by default: no endpoint, no hooks, decorator present', async (t) => {
  const saved = process.env.METRICS_ENABLED
  delete process.env.METRICS_ENABLED
  t.teardown(() => { if (saved !== undefined) process.env.METRICS_ENABLED = saved })
  const app = Fastify()
  t.teardown(() => app.close())
  let hooksAdded = 0
  app.addHook('onRoute', () => {})
  const addHook = app.addHook.bind(app)
  ;(app as unknown as { addHook: unknown }).addHook = (...args: Parameters<typeof addHook>) => { hooksAdded++; return addHook(...args) }
  await app.register(netboxMetrics)
  app.get('/a', async () => 'a')
  await app.ready()
  t.equal(hooksAdded, 0, 'a disabled plugin adds no hook')
  t.equal((await app.inject('/metrics')).statusCode, 404)
  t.equal(app.metrics.enabled, false)
  t.ok(app.metrics.registry, 'app.metrics.registry exists when disabled')
  await app.inject('/a')
  t.equal(await app.metrics.render(), '', 'nothing was recorded')
})

t.test('METRICS_ENABLED=yes turns it on; the option wins over the environment', async (t) => {
  const saved = process.env.METRICS_ENABLED
  process.env.METRICS_ENABLED = 'yes'
  t.teardown(() => { if (saved === undefined) delete process.env.METRICS_ENABLED; else process.env.METRICS_ENABLED = saved })
  const on = Fastify()
  t.teardown(() => on.close())
  await on.register(netboxMetrics, { defaultMetrics: false })
  t.equal((await on.inject('/metrics')).statusCode, 200)
  t.equal(on.metrics.enabled, true)
  const off = Fastify()
  t.teardown(() => off.close())
  await off.register(netboxMetrics, { enabled: false })
  t.equal((await off.inject('/metrics')).statusCode, 404)
})

t.test('enabled: true without the environment', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/a', async () => 'a')
  await app.inject('/a')
  t.match(await app.metrics.render(), /^http_requests_total\{method="GET",route="\/a",status_code="200"\} 1$/m)
})
