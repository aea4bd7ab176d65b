/**
 * How a response ends, against a real server with real sockets, each case compared with what the
 * client received (the truth from outside): completed (a server timeout's 408 included), ended by
 * the server before completing (a failed stream, a socket the server or app destroys: never an
 * abort), aborted (only the client going away), and the idle connection closed between requests
 * (nothing). See docs/metrics.md, "How a response ends", and hooks/http/response-end.ts.
 */
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import net from 'node:net'
import { Readable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { lines, scrape, sum } from './helpers/scrape'
import { sleep } from './helpers/net'

/** What a raw client received on one connection: the bytes, and how the connection ended. */
interface Received { text: string, status: number | null, ended: 'end' | 'error' | 'close' }

/** Sends `head` (and `body` after it), reads until the server closes; `keepOpenMs` waits before the client ends its side. */
function exchange (port: number, head: string, opts: { body?: string, keepOpenMs?: number } = {}): Promise<Received> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(head)
      if (opts.body !== undefined) socket.write(opts.body)
    })
    let text = ''
    let ended: Received['ended'] = 'close'
    socket.on('data', (d) => { text += d.toString('latin1') })
    socket.on('end', () => { ended = 'end' })
    socket.on('error', () => { ended = 'error' })
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      resolve({ text, status: m === null ? null : Number(m[1]), ended })
    })
    if (opts.keepOpenMs !== undefined) setTimeout(() => socket.end(), opts.keepOpenMs)
  })
}

async function start (t: Tap.Test, options: FastifyServerOptions, routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify(options)
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as net.AddressInfo).port }
}

/** received = completed + aborted + in flight, and nothing in flight once quiet. */
function checkInvariant (t: Tap.Test, body: string): void {
  t.equal(sum(body, 'http_requests_received_total'), sum(body, 'http_requests_total') + sum(body, 'http_requests_aborted_total') + sum(body, 'http_requests_in_flight'), 'received = completed + aborted + in flight')
  t.equal(sum(body, 'http_requests_in_flight'), 0, 'nothing left in flight')
  t.equal(sum(body, 'metrics_errors_total'), 0, 'no internal error')
}

t.test("requestTimeout: the client receives the server's 408, and it counts as a completed 408", async (t) => {
  // Node checks its timeouts every connectionsCheckingInterval, against headersTimeout as well.
  const seen: string[] = []
  const { app, port } = await start(t, { requestTimeout: 300, http: { connectionsCheckingInterval: 50, headersTimeout: 200, requestTimeout: 300 } as never }, (app) => {
    // The truth for http_exceptions_total: what reaches Fastify's error handling (here the
    // request stream's own error once the server destroyed the socket).
    app.addHook('onError', async (_request, _reply, err) => { seen.push((err as { code?: string }).code ?? '') })
    app.post('/upload', async (request) => ({ got: String(request.body).length }))
    app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
  })
  // A slow upload: 10 of the 100 announced bytes, then nothing.
  const got = await exchange(port, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n', { body: '0123456789' })
  t.equal(got.status, 408, 'the client received a 408')
  const bodyBytes = got.text.length - got.text.indexOf('\r\n\r\n') - 4
  await sleep(50)
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="POST",route="/upload",status_code="408"} 1'], 'counted with the status the client received')
  t.same(lines(body, 'http_requests_aborted_total'), ['http_requests_aborted_total{method="POST",route="/upload"} 0'], 'the client never went away: no abort')
  t.same(lines(body, 'http_response_size_bytes_sum'), [`http_response_size_bytes_sum{method="POST",route="/upload"} ${bodyBytes}`], 'the body of the 408 the client received')
  t.same(lines(body, 'http_exceptions_total'), seen.map((type) => `http_exceptions_total{method="POST",route="/upload",type="${type}"} 1`), 'exceptions: what Fastify\'s error handling saw, nothing more')
  checkInvariant(t, body)
})

t.test('connectionTimeout destroys a socket whose request reached a route: ended by the server, no status, never an abort', async (t) => {
  const { app, port } = await start(t, { connectionTimeout: 200 }, (app) => {
    app.get('/slow', async () => { await sleep(600); return 'late' })
  })
  const got = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(got.status, null, 'the client received no status')
  t.equal(got.text, '', 'nor any byte')
  await sleep(700) // the handler finishes after the socket is gone: counted once
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/slow",status_code="0"} 1'], 'status_code="0": the server ended it before any status')
  t.same(lines(body, 'http_exceptions_total'), ['http_exceptions_total{method="GET",route="/slow",type="ERR_HTTP_SOCKET_TIMEOUT"} 1'])
  t.same(lines(body, 'http_requests_aborted_total'), ['http_requests_aborted_total{method="GET",route="/slow"} 0'])
  checkInvariant(t, body)
})

t.test('keepAliveTimeout closes an idle connection between requests: that counts nothing', async (t) => {
  const { app, port } = await start(t, { keepAliveTimeout: 150 }, (app) => {
    app.get('/ok', async () => 'ok')
  })
  const got = await exchange(port, 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(got.text.match(/HTTP\/1\.1 200/g)?.length, 2, 'two responses, then the server closed the idle connection')
  t.equal(got.ended, 'end', 'closed by the server, cleanly')
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/ok",status_code="200"} 2'])
  t.same(lines(body, 'http_requests_aborted_total'), ['http_requests_aborted_total{method="GET",route="/ok"} 0'])
  t.same(lines(body, 'http_exceptions_total'), [])
  checkInvariant(t, body)
})

t.test('a reply stream that fails mid-reply: the status the client received, and an exception, never an abort', async (t) => {
  const { app, port } = await start(t, { logger: false }, (app) => {
    app.get('/stream', async (_request, reply) => {
      reply.type('application/octet-stream')
      let n = 0
      return new Readable({
        read () {
          n++
          if (n <= 2) this.push(Buffer.alloc(100, 'a'))
          else setTimeout(() => this.destroy(new Error('source failed')), 20)
        }
      })
    })
  })
  const got = await exchange(port, 'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(got.status, 200, 'the client received the 200 and two chunks')
  t.notMatch(got.text, /\r\n0\r\n\r\n$/, 'but not the end of the chunked body: the server cut the response')
  await sleep(50)
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/stream",status_code="200"} 1'])
  t.same(lines(body, 'http_exceptions_total'), ['http_exceptions_total{method="GET",route="/stream",type="ERR_STREAM_PREMATURE_CLOSE"} 1'])
  t.same(lines(body, 'http_requests_aborted_total'), ['http_requests_aborted_total{method="GET",route="/stream"} 0'])
  t.same(lines(body, 'http_response_size_bytes_sum'), ['http_response_size_bytes_sum{method="GET",route="/stream"} 200'], 'the bytes the response was given')
  checkInvariant(t, body)
})

t.test('a reply stream that fails before its first byte: a 500 and an exception', async (t) => {
  const { app, port } = await start(t, { logger: false }, (app) => {
    app.get('/stream', async (_request, reply) => {
      reply.type('application/octet-stream')
      return new Readable({ read () { this.destroy(new RangeError('source failed')) } })
    })
  })
  const got = await exchange(port, 'GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(got.status, 500, 'the client received a 500')
  const bodyBytes = got.text.length - got.text.indexOf('\r\n\r\n') - 4
  await sleep(50)
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/stream",status_code="500"} 1'])
  t.same(lines(body, 'http_exceptions_total'), ['http_exceptions_total{method="GET",route="/stream",type="RangeError"} 1'])
  t.same(lines(body, 'http_response_size_bytes_sum'), [`http_response_size_bytes_sum{method="GET",route="/stream"} ${bodyBytes}`])
  t.same(lines(body, 'http_requests_aborted_total'), ['http_requests_aborted_total{method="GET",route="/stream"} 0'])
  checkInvariant(t, body)
})

t.test('the app destroys the socket: ended by the server; the client leaving is the only abort', async (t) => {
  const { app, port } = await start(t, { logger: false }, (app) => {
    app.get('/destroy-early', async (request) => { await sleep(20); request.raw.destroy(); return await new Promise(() => {}) })
    app.get('/destroy-late', (_request, reply) => {
      reply.raw.writeHead(202, { 'content-type': 'text/plain' })
      reply.raw.write('part')
      setTimeout(() => reply.raw.destroy(), 20)
      reply.hijack()
    })
    app.get('/slow', async () => { await sleep(300); return 'late' })
  })
  const early = await exchange(port, 'GET /destroy-early HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(early.status, null, 'no status received')
  const late = await exchange(port, 'GET /destroy-late HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(late.status, 202, 'a 202 received, then the connection cut')
  // The client goes away (ends its side) while the handler runs.
  const left = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', { keepOpenMs: 50 })
  t.equal(left.status, null)
  await sleep(400)
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/destroy-early",status_code="0"} 1',
    'http_requests_total{method="GET",route="/destroy-late",status_code="202"} 1'
  ])
  t.same(lines(body, 'http_exceptions_total'), [
    'http_exceptions_total{method="GET",route="/destroy-early",type="ERR_STREAM_PREMATURE_CLOSE"} 1',
    'http_exceptions_total{method="GET",route="/destroy-late",type="ERR_STREAM_PREMATURE_CLOSE"} 1'
  ])
  t.same(lines(body, 'http_requests_aborted_total'), [
    'http_requests_aborted_total{method="GET",route="/destroy-early"} 0',
    'http_requests_aborted_total{method="GET",route="/destroy-late"} 0',
    'http_requests_aborted_total{method="GET",route="/slow"} 1'
  ])
  t.same(lines(body, 'http_response_size_bytes_sum'), [
    'http_response_size_bytes_sum{method="GET",route="/destroy-early"} 0',
    'http_response_size_bytes_sum{method="GET",route="/destroy-late"} 4',
    'http_response_size_bytes_sum{method="GET",route="/slow"} 0'
  ])
  checkInvariant(t, body)
})
