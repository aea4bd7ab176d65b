/**
 * A real listening server: client aborts (they need a real socket), chunked uploads, streamed
 * responses, keep-alive, and the received = completed + aborted + in-flight invariant.
 */
import t from 'tap'
import Fastify from 'fastify'
import net from 'node:net'
import http from 'node:http'
import { Readable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { lines, scrape, sum, value } from './helpers/scrape'

function rawRequest (port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text))
    let out = ''
    socket.on('data', (d) => { out += d.toString() })
    socket.on('end', () => resolve(out))
    socket.on('error', reject)
  })
}

function invariant (body: string): [number, number] {
  return [sum(body, 'http_requests_received_total'), sum(body, 'http_requests_total') + sum(body, 'http_requests_aborted_total') + sum(body, 'http_requests_in_flight')]
}

t.test('aborts, chunked uploads and streams over a real socket', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  let releaseSlow: () => void = () => {}
  const slowStarted: Array<() => void> = []
  app.get('/slow', async () => {
    slowStarted.shift()?.()
    await new Promise<void>((resolve) => { releaseSlow = resolve })
    return { done: true }
  })
  app.post('/upload', async (request) => ({ got: (request.body as string).length }))
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
  app.get('/stream', async (_request, reply) => {
    reply.type('application/octet-stream')
    return Readable.from([Buffer.alloc(1000), Buffer.alloc(24)])
  })
  app.get('/ok', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port

  // 1. Three clients abort while their handler is running.
  for (let i = 0; i < 3; i++) {
    const started = new Promise<void>((resolve) => slowStarted.push(resolve))
    const req = http.get({ port, host: '127.0.0.1', path: '/slow' })
    req.on('error', () => {})
    await started
    const mid = await scrape(app)
    t.equal(value(mid, 'http_requests_in_flight{method="GET"}'), 1, 'in flight while the handler runs')
    req.destroy()
    await new Promise((resolve) => setTimeout(resolve, 50))
    releaseSlow() // the handler finishes after the client left: counted once, as aborted
  }
  await new Promise((resolve) => setTimeout(resolve, 50))

  // 2. A chunked upload of 3 x 10 bytes.
  const upload = await rawRequest(port, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\na\r\n0123456789\r\na\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n')
  t.match(upload, /^HTTP\/1.1 200/)

  // 3. A streamed response of 1024 bytes, and 5 keep-alive requests on one agent.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = (path: string): Promise<number> => new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path, agent }, (res) => {
      let n = 0
      res.on('data', (d: Buffer) => { n += d.length })
      res.on('end', () => resolve(n))
    }).on('error', reject)
  })
  t.equal(await get('/stream'), 1024)
  for (let i = 0; i < 5; i++) await get('/ok')

  const body = await scrape(app)
  t.same(lines(body, 'http_requests_aborted_total'), [
    'http_requests_aborted_total{method="GET",route="/ok"} 0',
    'http_requests_aborted_total{method="GET",route="/slow"} 3',
    'http_requests_aborted_total{method="GET",route="/stream"} 0',
    'http_requests_aborted_total{method="POST",route="/upload"} 0'
  ])
  t.equal(value(body, 'http_requests_total{method="GET",route="/slow",status_code="200"}'), undefined, 'aborted requests are not completed requests')
  t.equal(value(body, 'http_request_size_bytes_sum{method="POST",route="/upload"}'), 30, 'chunked body bytes counted')
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/stream"}'), 1024, 'streamed bytes counted')
  t.equal(value(body, 'http_requests_total{method="GET",route="/ok",status_code="200"}'), 5)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/ok"}'), 10, 'Content-Length of responses sent over a socket (2 bytes x 5)')
  t.equal(value(body, 'http_response_size_bytes_bucket{method="GET",route="/ok",le="16"}'), 5)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 9)
  const [received, accounted] = invariant(body)
  t.equal(received, accounted, 'received = completed + aborted + in flight')
})

t.test('the invariant holds at every scrape under concurrent load', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/work', async () => { await new Promise((resolve) => setTimeout(resolve, 2)); return 'ok' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const requests: Array<Promise<void>> = []
  for (let i = 0; i < 400; i++) {
    requests.push(new Promise((resolve) => {
      const req = http.get({ port, host: '127.0.0.1', path: '/work', agent }, (res) => { res.resume(); res.on('end', resolve) })
      req.on('error', () => resolve())
    }))
  }
  // Scrape in the middle of the load: the invariant holds for a consistent snapshot.
  for (let i = 0; i < 5; i++) {
    const [received, accounted] = invariant(await scrape(app))
    t.equal(received, accounted, `mid-load scrape ${i}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await Promise.all(requests)
  const body = await scrape(app)
  t.equal(value(body, 'http_requests_total{method="GET",route="/work",status_code="200"}'), 400)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
})

/** Writes `text` on one connection and resolves with everything read once `until` matches it (or the socket ends). */
function pipelined (port: number, text: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text))
    let out = ''
    socket.on('data', (d) => {
      out += d.toString()
      if (until.test(out)) { socket.destroy(); resolve(out) }
    })
    socket.on('error', reject)
  })
}

t.test('pipelined requests on one connection, and those still queued when the client leaves', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  let releaseSlow: () => void = () => {}
  let slowStarted: () => void = () => {}
  app.get('/slow', async () => {
    slowStarted()
    await new Promise<void>((resolve) => { releaseSlow = resolve })
    return 'slow'
  })
  app.get('/ok', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`

  // Three requests in one write: Node answers them in order, each settled once.
  const three = await pipelined(port, get('/ok').repeat(3), /(HTTP\/1.1 200[^]*){3}ok$/)
  t.equal(three.match(/HTTP\/1.1 200/g)?.length, 3)
  let body = await scrape(app)
  t.equal(value(body, 'http_requests_total{method="GET",route="/ok",status_code="200"}'), 3)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)

  // A slow request with two queued behind it; the client leaves before any answer. Node emits
  // nothing for the queued responses: they are settled from the socket's close, as aborted
  // (their handlers ended them, but they were never sent).
  const started = new Promise<void>((resolve) => { slowStarted = resolve })
  const socket = net.connect(port, '127.0.0.1', () => socket.write(get('/slow') + get('/ok') + get('/ok')))
  socket.on('error', () => {})
  await started
  await new Promise((resolve) => setTimeout(resolve, 50)) // the queued handlers run and end their responses
  body = await scrape(app)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 3, 'all three in flight')
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 50))
  releaseSlow()
  await new Promise((resolve) => setTimeout(resolve, 20))
  body = await scrape(app)
  t.same(lines(body, 'http_requests_aborted_total'), [
    'http_requests_aborted_total{method="GET",route="/ok"} 2',
    'http_requests_aborted_total{method="GET",route="/slow"} 1'
  ])
  t.equal(value(body, 'http_requests_total{method="GET",route="/ok",status_code="200"}'), 3, 'only the three answered')
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0, 'nothing left in flight')
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 6)
  const [received, accounted] = invariant(body)
  t.equal(received, accounted, 'received = completed + aborted + in flight')
})

t.test('a keep-alive connection: completed responses, then one the client abandons', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  let slowStarted: () => void = () => {}
  let releaseSlow: () => void = () => {}
  app.get('/ok', async () => 'ok')
  app.get('/slow', async () => { slowStarted(); await new Promise<void>((resolve) => { releaseSlow = resolve }); return 'slow' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  let out = ''
  socket.on('data', (d) => { out += d.toString() })
  for (let i = 1; i <= 4; i++) {
    socket.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n')
    while ((out.match(/\r\n\r\nok/g)?.length ?? 0) < i) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const started = new Promise<void>((resolve) => { slowStarted = resolve })
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await started
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 50))
  releaseSlow()
  await new Promise((resolve) => setTimeout(resolve, 20))
  const body = await scrape(app)
  t.equal(value(body, 'http_requests_total{method="GET",route="/ok",status_code="200"}'), 4)
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/ok"}'), 0)
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/slow"}'), 1)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/ok"}'), 8, '2 bytes x 4')
})

t.test('two apps and a plain Node server in one process; one app closes first', async (t) => {
  const a = Fastify()
  const b = Fastify()
  t.teardown(() => b.close())
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await b.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  a.get('/a', async () => 'a')
  b.get('/b', async () => 'b')
  const plain = http.createServer((_req, res) => res.end('plain'))
  t.teardown(() => plain.close())
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve))
  await a.listen({ port: 0, host: '127.0.0.1' })
  await b.listen({ port: 0, host: '127.0.0.1' })
  const port = (server: net.Server): number => (server.address() as net.AddressInfo).port
  const fetchText = async (p: number, path: string): Promise<string> => await (await fetch(`http://127.0.0.1:${p}${path}`)).text()

  for (let i = 0; i < 3; i++) t.equal(await fetchText(port(a.server), '/a'), 'a')
  for (let i = 0; i < 2; i++) t.equal(await fetchText(port(b.server), '/b'), 'b')
  t.equal(await fetchText(port(plain), '/'), 'plain')
  t.equal(value(await scrape(a), 'http_requests_total{method="GET",route="/a",status_code="200"}'), 3)
  t.equal(value(await scrape(b), 'http_requests_total{method="GET",route="/b",status_code="200"}'), 2)
  t.equal(value(await scrape(b), 'http_requests_total{method="GET",route="/a",status_code="200"}'), undefined, 'each app counts its own')

  await a.close()
  for (let i = 0; i < 4; i++) t.equal(await fetchText(port(b.server), '/b'), 'b')
  const body = await scrape(b)
  t.equal(value(body, 'http_requests_total{method="GET",route="/b",status_code="200"}'), 6, 'still counted after the other app closed')
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
})

t.test('an exception while settling a response over a socket is caught and counted', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/boom', async () => 'boom')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}/boom`
  t.equal(await (await fetch(url)).text(), 'boom')
  // Break the series the next response is observed into.
  const family = app.metrics.registry.getSingleMetric('http_request_size_bytes') as unknown as { child: (...v: string[]) => { observe: (v: number) => void } }
  family.child('GET', '/boom').observe = () => { throw new Error('broken series') }
  const uncaught: unknown[] = []
  const onUncaught = (err: unknown): void => { uncaught.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => process.off('uncaughtException', onUncaught))
  const res = await fetch(url)
  t.equal(res.status, 200)
  t.equal(await res.text(), 'boom', 'the response is unaffected')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(uncaught, [], 'nothing thrown out of the finish channel')
  const body = await scrape(app)
  t.equal(value(body, 'metrics_errors_total{component="http"}'), 1)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_requests_total{method="GET",route="/boom",status_code="200"}'), 2)
})
