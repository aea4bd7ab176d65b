/**
 * Bad input over a real listening server and raw sockets. After each case: the process is up,
 * no unhandled rejection happened, nothing is left in flight, received = completed + aborted +
 * in flight, the number of series is bounded, and promtool accepts the exposition.
 */
import t from 'tap'
import Fastify from 'fastify'
import net from 'node:net'
import netboxMetrics from '../lib/index'
import { hasPromtool, promtoolCheck, samples, sum } from './helpers/scrape'

const unhandled: unknown[] = []
process.on('unhandledRejection', (err) => { unhandled.push(err) })

/** Sends raw bytes, optionally closes early, and resolves with whatever came back. */
function raw (port: number, chunks: Array<string | Buffer>, opts: { closeAfterMs?: number, halfClose?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let out = ''
    socket.on('data', (d) => { out += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => resolve(out))
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c)
      if (opts.closeAfterMs !== undefined) setTimeout(() => socket.destroy(), opts.closeAfterMs)
      else if (opts.halfClose !== false) socket.end()
    })
    setTimeout(() => socket.destroy(), 3000)
  })
}

t.test('bad input never breaks the counts', async (t) => {
  const app = Fastify({ logger: false, requestTimeout: 2000 })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.post('/echo', async (request) => ({ n: JSON.stringify(request.body).length }))
  app.get('/ok', async () => 'ok')
  app.get('/slow', async () => { await new Promise((resolve) => setTimeout(resolve, 300)); return 'late' })
  app.get('/throw-string', async () => { throw 'a string' }) // eslint-disable-line no-throw-literal
  app.get('/throw-object', async () => { throw { not: 'an error' } }) // eslint-disable-line no-throw-literal
  app.get('/throw-sync', () => { throw new RangeError('sync') })
  app.get('/early', { preHandler: (_request, reply, done) => { void reply.code(202).send('early'); done() } }, async () => 'never')
  app.get('/early-onrequest', { onRequest: async (_request, reply) => { await reply.code(401).send('no') } }, async () => 'never')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port

  async function check (what: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 30))
    const res = await app.inject('/metrics')
    t.equal(res.statusCode, 200, `${what}: the process answers`)
    const body = res.body
    t.equal(sum(body, 'http_requests_in_flight'), 0, `${what}: nothing in flight`)
    t.equal(sum(body, 'http_requests_received_total'), sum(body, 'http_requests_total') + sum(body, 'http_requests_aborted_total') + sum(body, 'http_requests_in_flight'), `${what}: invariant`)
    t.ok(samples(body).size < 2000, `${what}: series bounded (${samples(body).size})`)
    t.equal(unhandled.length, 0, `${what}: no unhandled rejection`)
    if (hasPromtool()) t.same(promtoolCheck(body), [], `${what}: promtool`)
  }

  await raw(port, ['GARBAGE\r\n\r\n'])
  await raw(port, ['GET / HTTP/9.9\r\n\r\n'])
  await check('malformed request lines')

  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'])
  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}'])
  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}'])
  await check('invalid and conflicting Content-Length')

  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', 'zz\r\nnot hex\r\n'])
  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', '2\r\n{}'], { closeAfterMs: 50 })
  await check('broken chunked encoding')

  await raw(port, ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n', '{"a":'], { closeAfterMs: 50 })
  await check('body cut off mid-upload')

  for (let i = 0; i < 5; i++) await raw(port, ['GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'], { closeAfterMs: 20 })
  await new Promise((resolve) => setTimeout(resolve, 400))
  await check('clients that close before the response')

  await raw(port, [`GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`])
  await check('oversized headers')

  await raw(port, ['FOO /ok HTTP/1.1\r\nHost: x\r\n\r\n'])
  await raw(port, ['PROPFIND /ok HTTP/1.1\r\nHost: x\r\n\r\n'])
  await raw(port, ['BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n'])
  await check('unknown methods')

  const agentless = async (path: string, method = 'GET'): Promise<void> => { await raw(port, [`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]) }
  const batch: Array<Promise<void>> = []
  for (let i = 0; i < 10_000; i++) {
    batch.push(agentless(`/${Math.random().toString(36).slice(2)}/${i}?q=${i}`))
    if (batch.length === 100) await Promise.all(batch.splice(0))
  }
  await Promise.all(batch)
  await check('10,000 distinct random 404 URLs')
  const after404 = await app.inject('/metrics')
  t.equal(samples(after404.body).get('http_requests_total{method="GET",route="__unmatched__",status_code="404"}'), 10_000, 'all counted under one series')

  for (const path of ['/ok', '/echo', '/metrics', '/nope', '/early']) {
    await agentless(path, 'HEAD')
    await agentless(path, 'OPTIONS')
  }
  await check('HEAD and OPTIONS everywhere')

  for (const path of ['/throw-string', '/throw-object', '/throw-sync', '/early', '/early-onrequest']) await agentless(path)
  await check('handlers that throw non-errors, hooks that reply early')
  const body = (await app.inject('/metrics')).body
  const s = samples(body)
  t.equal(s.get('http_requests_total{method="GET",route="/early",status_code="202"}'), 1)
  t.equal(s.get('http_requests_total{method="GET",route="/early-onrequest",status_code="401"}'), 1)
  t.equal(s.get('http_exceptions_total{method="GET",route="/throw-sync",type="RangeError"}'), 1)
  t.equal(s.get('http_requests_total{method="GET",route="/throw-string",status_code="500"}'), 1)
  t.equal(s.get('http_requests_aborted_total{method="GET",route="/slow"}'), 5)
  t.equal(s.get('metrics_errors_total{component="http"}'), 0, 'no error inside the instrumentation')
})
