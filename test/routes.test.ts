/**
 * The route label is read at request time from the matched route: routes registered before the
 * plugin, inside prefixed encapsulated plugins, and loaded by @fastify/autoload are all measured.
 */
import t from 'tap'
import Fastify from 'fastify'
import autoload from '@fastify/autoload'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import netboxMetrics from '../lib/index'
import { lines, scrape } from './helpers/scrape'

t.test('before the plugin, prefixed, encapsulated, autoloaded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fnm-autoload-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'dcim'))
  writeFileSync(join(dir, 'dcim', 'devices.js'), "module.exports = async function (app) { app.get('/devices/:id', async (req) => ({ id: req.params.id })) }\n")
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/early', async () => 'registered before the plugin')
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await app.register(async (child) => {
    child.addHook('preHandler', async () => {}) // an encapsulated hook, timed for this prefix only
    child.get('/sites/:slug', async () => 'site')
  }, { prefix: '/api/dcim' })
  await app.register(autoload, { dir, options: { prefix: '/auto' } })
  await app.inject('/early')
  await app.inject('/api/dcim/sites/ams1')
  await app.inject('/api/dcim/sites/fra1')
  await app.inject('/auto/dcim/devices/7')
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/api/dcim/sites/:slug",status_code="200"} 2',
    'http_requests_total{method="GET",route="/auto/dcim/devices/:id",status_code="200"} 1',
    'http_requests_total{method="GET",route="/early",status_code="200"} 1'
  ])
  t.match(body, /^http_request_phase_duration_seconds_count\{route="\/api\/dcim\/sites\/:slug",phase="preHandler"\} 2$/m)
  t.notMatch(body, /route="\/auto\/dcim\/devices\/:id",phase="preHandler"/, 'the encapsulated hook does not leak')
})
