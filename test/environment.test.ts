/**
 * Environment variables fail loudly: an unrecognised METRICS_ENABLED or METRICS_PORT is a coded
 * error at registration naming the variable and what it accepts; an empty value means unset
 * (docker-compose passes `${METRICS_HOST}` as "" when the variable is not set), so METRICS_HOST=""
 * keeps the separate listener on loopback. Ground truth for the last: the address the real
 * listener is bound to, as the operating system reports it.
 */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { resolveOptions } from '../lib/options'

/** Sets environment variables for one test, restored at its end. */
function setEnv (t: Tap.Test, vars: Record<string, string>): void {
  for (const [name, v] of Object.entries(vars)) {
    const saved = process.env[name]
    process.env[name] = v
    t.teardown(() => { if (saved === undefined) delete process.env[name]; else process.env[name] = saved })
  }
}
type Tap = typeof t
declare namespace Tap { type Test = typeof t }

t.test('METRICS_ENABLED: an unrecognised value is a coded error naming the variable and the accepted values', async (t) => {
  for (const v of ['enabled', 'True1', '2', 'disable']) {
    t.throws(() => resolveOptions({}, { METRICS_ENABLED: v }), {
      code: 'FNM_ERR_ENV_INVALID',
      name: 'NetboxMetricsError',
      message: `Invalid environment variable METRICS_ENABLED="${v}": expected one of true, 1, yes, on, false, 0, no, off (any case), or unset`
    }, v)
  }
  t.equal(resolveOptions({}, { METRICS_ENABLED: ' Yes ' }).enabled, true)
  t.equal(resolveOptions({}, { METRICS_ENABLED: 'Off' }).enabled, false)
  t.equal(resolveOptions({}, { METRICS_ENABLED: '' }).enabled, false, 'empty: unset')
  t.equal(resolveOptions({ enabled: true }, { METRICS_ENABLED: 'enabled' }).enabled, true, 'not read when the option is given')
})

t.test('METRICS_ENABLED=enabled: registration rejects instead of turning metrics off silently', async (t) => {
  setEnv(t, { METRICS_ENABLED: 'enabled' })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(app.register(netboxMetrics).ready(), { code: 'FNM_ERR_ENV_INVALID', message: /METRICS_ENABLED="enabled"/ })
})

t.test('METRICS_PORT: empty means unset, anything but a port number is a coded error', async (t) => {
  t.equal(resolveOptions({}, { METRICS_PORT: '' }).server, null)
  t.equal(resolveOptions({}, { METRICS_PORT: '  ' }).server, null)
  t.same(resolveOptions({}, { METRICS_PORT: ' 9464 ' }).server, { port: 9464, host: '127.0.0.1' })
  for (const v of ['metrics', '-1', '65536', '9464.5', '0x10']) {
    t.throws(() => resolveOptions({}, { METRICS_PORT: v }), {
      code: 'FNM_ERR_ENV_INVALID',
      message: `Invalid environment variable METRICS_PORT="${v}": expected a port number (0-65535), or unset`
    }, v)
  }
})

t.test('METRICS_HOST: empty means unset (loopback), never every interface', async (t) => {
  t.same(resolveOptions({}, { METRICS_PORT: '9464', METRICS_HOST: '' }).server, { port: 9464, host: '127.0.0.1' })
  t.same(resolveOptions({}, { METRICS_PORT: '9464', METRICS_HOST: ' ::1 ' }).server, { port: 9464, host: '::1' })

  setEnv(t, { METRICS_PORT: '0', METRICS_HOST: '' })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await app.ready()
  t.same(app.metrics.listener?.address(), { address: '127.0.0.1', family: 'IPv4', port: (app.metrics.listener?.address() as { port: number }).port }, 'bound to loopback')
})
