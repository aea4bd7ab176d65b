/**
 * The endpoint's promises that failed when checked from outside (issue 24): it answers HEAD
 * whatever the app's `exposeHeadRoutes` says, and `METRICS_TOKEN` is read through the same
 * trimming rule as every other environment variable (spaces count as unset).
 */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { resolveOptions } from '../lib/options'

for (const exposeHeadRoutes of [true, false]) {
  t.test(`HEAD /metrics answers like GET without a body (exposeHeadRoutes: ${exposeHeadRoutes})`, async (t) => {
    const app = Fastify({ exposeHeadRoutes })
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
    const get = await app.inject('/metrics')
    const head = await app.inject({ method: 'HEAD', url: '/metrics' })
    t.equal(get.statusCode, 200)
    t.equal(head.statusCode, 200, 'HEAD is served')
    t.equal(head.headers['content-type'], get.headers['content-type'])
    t.equal(head.body, '', 'with no body')
    t.ok(app.hasRoute({ method: 'HEAD', url: '/metrics' }))
  })
}

t.test('METRICS_TOKEN of spaces counts as unset: the endpoint is open', async (t) => {
  t.equal(resolveOptions({ enabled: true }, { METRICS_TOKEN: '   ' }).access.auth, null)
  t.equal(resolveOptions({ enabled: true }, { METRICS_TOKEN: '' }).access.auth, null)
  const saved = process.env.METRICS_TOKEN
  process.env.METRICS_TOKEN = ' \t '
  t.teardown(() => { if (saved === undefined) delete process.env.METRICS_TOKEN; else process.env.METRICS_TOKEN = saved })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  t.equal((await app.inject('/metrics')).statusCode, 200, 'a scrape without credentials passes')
})

t.test('METRICS_TOKEN is trimmed like every other variable', async (t) => {
  const saved = process.env.METRICS_TOKEN
  process.env.METRICS_TOKEN = '  s3cret \n'
  t.teardown(() => { if (saved === undefined) delete process.env.METRICS_TOKEN; else process.env.METRICS_TOKEN = saved })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200)
})

t.test('PROMETHEUS_MULTIPROC_DIR is trimmed like every other variable', async (t) => {
  const dir = t.testdir({})
  t.equal(resolveOptions({ enabled: true }, { PROMETHEUS_MULTIPROC_DIR: `  ${dir}  ` }).multiprocess?.dir, dir)
  t.equal(resolveOptions({ enabled: true }, { PROMETHEUS_MULTIPROC_DIR: '  ' }).multiprocess, null)
})
