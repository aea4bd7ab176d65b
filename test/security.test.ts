/** Access control (token, basic, function, allow-list), the separate listener, the overflow cap, escaping. */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import { Writable } from 'node:stream'
import netboxMetrics from '../lib/index'
import type { NetboxMetricsOptions } from '../lib/options'
import { isAllowed, resolveAllow, type ScrapeRequest } from '../lib/access'
import { hasPromtool, lines, promtoolCheck, scrape, value } from './helpers/scrape'

async function appWith (t: Tap.Test, opts: NetboxMetricsOptions, fastifyOpts: Parameters<typeof Fastify>[0] = {}): Promise<FastifyInstance> {
  const app = Fastify(fastifyOpts)
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, ...opts })
  return app
}
type Tap = typeof t
declare namespace Tap { type Test = typeof t }

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`

t.test('bearer token', async (t) => {
  const logs: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { logs.push(String(chunk)); cb() } })
  const app = await appWith(t, { auth: { token: 's3cret-token' } }, { logger: { level: 'trace', stream } })
  const none = await app.inject('/metrics')
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="metrics"')
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } })).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret-token-and-more' } })).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret-toke' } })).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: basic('x', 's3cret-token') } })).statusCode, 401)
  const ok = await app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret-token' } })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /^# TYPE http_requests_total counter$/m)
  t.equal(logs.filter((l) => l.includes('s3cret')).length, 0, 'the secret is never logged')
  t.ok(logs.length > 0, 'logs were captured')
})

t.test('METRICS_TOKEN sets the token', async (t) => {
  process.env.METRICS_TOKEN = 'from-env'
  t.teardown(() => { delete process.env.METRICS_TOKEN })
  const app = await appWith(t, {})
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer from-env' } })).statusCode, 200)
})

t.test('basic auth, and token or basic together', async (t) => {
  const app = await appWith(t, { auth: { basic: { username: 'prom', password: 'pa:ss word' } } })
  const none = await app.inject('/metrics')
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Basic realm="metrics", charset="UTF-8"')
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: basic('prom', 'wrong') } })).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: basic('prom', 'pa:ss word') } })).statusCode, 200)

  const both = await appWith(t, { auth: { token: 'tok', basic: { username: 'u', password: 'p' } } })
  t.equal((await both.inject('/metrics')).headers['www-authenticate'], 'Bearer realm="metrics", Basic realm="metrics", charset="UTF-8"')
  t.equal((await both.inject({ url: '/metrics', headers: { authorization: 'Bearer tok' } })).statusCode, 200)
  t.equal((await both.inject({ url: '/metrics', headers: { authorization: basic('u', 'p') } })).statusCode, 200)
})

t.test('an auth function', async (t) => {
  let calls = 0
  const app = await appWith(t, {
    auth: async (request) => {
      calls++
      if (request.headers['x-boom'] === '1') throw new Error('auth backend down')
      return request.headers['x-internal'] === '1'
    }
  })
  t.equal((await app.inject('/metrics')).statusCode, 403)
  t.equal((await app.inject({ url: '/metrics', headers: { 'x-internal': '1' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/metrics', headers: { 'x-boom': '1' } })).statusCode, 403, 'a throwing function refuses (fails closed)')
  t.equal(calls, 3)
  t.equal(value(app.metrics.registry ? await app.metrics.render() : '', 'metrics_errors_total{component="auth"}'), 1)
})

t.test('allow-list, IPv4 and IPv6, honouring trustProxy', async (t) => {
  const list = resolveAllow(['127.0.0.1', '10.0.0.0/8', '2001:db8::/32', '::1'])
  if (list === null) throw new Error('no list')
  t.equal(isAllowed(list, '10.1.2.3'), true)
  t.equal(isAllowed(list, '11.1.2.3'), false)
  t.equal(isAllowed(list, '::ffff:10.9.9.9'), true, 'IPv4-mapped IPv6')
  t.equal(isAllowed(list, '2001:db8:1::5'), true)
  t.equal(isAllowed(list, '2001:db9::5'), false)
  t.equal(isAllowed(list, '::1'), true)
  t.equal(isAllowed(list, 'not-an-ip'), false)

  const app = await appWith(t, { allow: ['10.0.0.0/8', '::1'] })
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '192.168.1.1' })).statusCode, 403)
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '10.20.30.40' })).statusCode, 200)
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '::1' })).statusCode, 200)
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '10.20.30.40', headers: { 'x-forwarded-for': '8.8.8.8' } })).statusCode, 200, 'X-Forwarded-For ignored without trustProxy')

  const proxied = await appWith(t, { allow: ['10.0.0.0/8'], auth: { token: 't' } }, { trustProxy: true })
  t.equal((await proxied.inject({ url: '/metrics', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '8.8.8.8', authorization: 'Bearer t' } })).statusCode, 403, 'the forwarded client address is checked')
  t.equal((await proxied.inject({ url: '/metrics', remoteAddress: '8.8.8.8', headers: { 'x-forwarded-for': '10.1.1.1', authorization: 'Bearer t' } })).statusCode, 200)
  t.equal((await proxied.inject({ url: '/metrics', remoteAddress: '8.8.8.8', headers: { 'x-forwarded-for': '10.1.1.1' } })).statusCode, 401, 'allowed address still needs the token')
})

t.test('bad access options', async (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ auth: { token: '' } }, 'FNM_ERR_OPTION_INVALID', /'auth.token'/],
    [{ auth: { tokn: 'x' } }, 'FNM_ERR_OPTION_UNKNOWN', /'auth.tokn'/],
    [{ auth: {} }, 'FNM_ERR_OPTION_INVALID', /'auth'/],
    [{ auth: { basic: { username: 'a:b', password: 'p' } } }, 'FNM_ERR_OPTION_INVALID', /'auth.basic.username'/],
    [{ auth: 'secret' }, 'FNM_ERR_OPTION_INVALID', /'auth'/],
    [{ allow: ['10.0.0.0/33'] }, 'FNM_ERR_OPTION_INVALID', /'allow\[0\]'/],
    [{ allow: ['example.com'] }, 'FNM_ERR_OPTION_INVALID', /'allow\[0\]'/],
    [{ allow: [] }, 'FNM_ERR_OPTION_INVALID', /'allow'/],
    [{ server: { port: 70000 } }, 'FNM_ERR_OPTION_INVALID', /'server.port'/],
    [{ server: { port: 1, hots: 'x' } }, 'FNM_ERR_OPTION_UNKNOWN', /'server.hots'/]
  ]
  for (const [opts, code, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(netboxMetrics, opts as NetboxMetricsOptions) }, { code, message }, JSON.stringify(opts))
    await app.close()
  }
})

function get (port: number, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number, body: string, headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let body = ''
      res.on('data', (d) => { body += String(d) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('a separate listener serves the endpoint, not the app port, and closes with the app', async (t) => {
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, server: { port: 0 }, auth: { token: 'tok' } })
  app.get('/hello', async () => 'hi')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const appPort = (app.server.address() as { port: number }).port
  const listener = app.metrics.listener
  if (listener === null) throw new Error('no listener')
  const port = (listener.address() as { port: number }).port
  t.not(port, appPort)
  t.equal((await get(appPort, '/metrics')).status, 404, 'not on the app port')
  await get(appPort, '/hello')
  t.equal((await get(port, '/metrics')).status, 401)
  const ok = await get(port, '/metrics', 'GET', { authorization: 'Bearer tok' })
  t.equal(ok.status, 200)
  t.match(ok.body, /^http_requests_total\{method="GET",route="\/hello",status_code="200"\} 1$/m)
  const head = await get(port, '/metrics?x=1', 'HEAD', { authorization: 'Bearer tok' })
  t.equal(head.status, 200)
  t.equal(head.body, '')
  t.equal((await get(port, '/other')).status, 404)
  const post = await get(port, '/metrics', 'POST')
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
  await app.close()
  t.equal(app.metrics.listener, null)
  await t.rejects(get(port, '/metrics'), { code: 'ECONNREFUSED' }, 'closed with the app')
})

t.test('METRICS_PORT moves the endpoint to its own port', async (t) => {
  process.env.METRICS_PORT = '0'
  t.teardown(() => { delete process.env.METRICS_PORT })
  const app = await appWith(t, {})
  await app.ready()
  t.equal((await app.inject('/metrics')).statusCode, 404)
  const listener = app.metrics.listener
  t.ok(listener?.listening, 'listening')
  const res = await get((listener?.address() as { port: number }).port, '/metrics')
  t.equal(res.status, 200)
})

t.test('an auth function gets the same request on the app\'s port and on the separate listener', async (t) => {
  // Denies by address: loopback may not scrape. Before the shapes matched, the listener passed
  // Node's raw request (no `ip`), and this function let every scrape through there.
  const seen: Array<Record<string, string>> = []
  const auth = (r: ScrapeRequest): boolean => {
    seen.push({ keys: Object.keys(r).sort().join(','), ip: typeof r.ip, method: r.method, url: r.url, raw: String(r.raw.headers === r.headers), fastifyRequest: r.fastifyRequest === null ? 'null' : typeof r.fastifyRequest.id, frozen: String(Object.isFrozen(r)) })
    return !['127.0.0.1', '::ffff:127.0.0.1', '::1'].includes(r.ip)
  }
  const onPort = await appWith(t, { auth })
  await onPort.listen({ port: 0, host: '127.0.0.1' })
  t.equal((await get((onPort.server.address() as { port: number }).port, '/metrics?x=1')).status, 403, 'app\'s port: loopback refused')
  t.equal((await onPort.inject({ url: '/metrics', remoteAddress: '10.0.0.1' })).statusCode, 200, 'app\'s port: another address allowed')

  const separate = await appWith(t, { auth, server: { port: 0 } })
  await separate.ready()
  const port = (separate.metrics.listener?.address() as { port: number }).port
  t.equal((await get(port, '/metrics?x=1')).status, 403, 'separate listener: loopback refused too')

  const fields = { keys: 'fastifyRequest,headers,ip,method,raw,url', ip: 'string', method: 'GET', url: '/metrics?x=1', raw: 'true', frozen: 'true' }
  t.same(seen, [
    { ...fields, fastifyRequest: 'string' },
    { ...fields, url: '/metrics', fastifyRequest: 'string' },
    { ...fields, fastifyRequest: 'null' }
  ])
})

t.test('gzip when the scraper accepts it', async (t) => {
  const app = await appWith(t, { defaultMetrics: true })
  const res = await app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip, deflate' } })
  t.equal(res.headers['content-encoding'], 'gzip')
  const { gunzipSync } = await import('node:zlib')
  t.match(gunzipSync(res.rawPayload).toString(), /^# TYPE http_requests_total counter$/m)
  const plain = await app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip;q=0, identity' } })
  t.equal(plain.headers['content-encoding'], undefined)
})

t.test('the series cap folds new label sets into __overflow__', async (t) => {
  const app = await appWith(t, { maxSeriesPerMetric: 3 })
  for (let i = 0; i < 6; i++) app.get(`/r${i}`, async () => 'x')
  for (let i = 0; i < 6; i++) await app.inject(`/r${i}`)
  for (let i = 0; i < 50; i++) await app.inject(`/random-${i}`)
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/r0",status_code="200"} 1',
    'http_requests_total{method="GET",route="/r1",status_code="200"} 1',
    'http_requests_total{method="GET",route="/r2",status_code="200"} 1',
    'http_requests_total{method="__overflow__",route="__overflow__",status_code="__overflow__"} 53'
  ])
  t.equal(value(body, 'metrics_series_dropped_total{metric="http_requests_total"}'), 4, 'one per label set folded (r3, r4, r5 and __unmatched__ 404)')
  t.equal(lines(body, 'http_request_duration_seconds_count').length, 4)
})

t.test('escaping: quotes, backslashes, newlines and non-ASCII in routes and error types', async (t) => {
  const app = await appWith(t, {})
  class Quoted extends Error {}
  Object.defineProperty(Quoted, 'name', { value: 'Bad"Name\\With\nNewline' })
  app.get('/géo/ünïcode/:id', async () => { throw new Quoted('x') })
  app.get('/q"uote\\d', async () => 'ok')
  await app.inject('/g%C3%A9o/%C3%BCn%C3%AFcode/1')
  await app.inject('/q%22uote%5Cd')
  const body = await scrape(app)
  t.match(body, /^http_requests_total\{method="GET",route="\/géo\/ünïcode\/:id",status_code="500"\} 1$/m)
  t.match(body, /^http_exceptions_total\{method="GET",route="\/géo\/ünïcode\/:id",type="Bad\\"Name\\\\With\\nNewline"\} 1$/m)
  t.match(body, /^http_requests_total\{method="GET",route="\/q\\"uote\\\\d",status_code="200"\} 1$/m)
  if (hasPromtool()) t.same(promtoolCheck(body), [], 'promtool parses it')
})
