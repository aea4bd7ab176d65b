/**
 * WebSocket upgrades with the real @fastify/websocket and the `ws` client over a real socket.
 * An upgrade completes its request with status_code="101" when the handshake is written: its
 * duration ends there, it leaves http_requests_in_flight then, and the connection closing later
 * is no abort. Ground truth: the number of connections the client opened and saw upgraded, and
 * the status line the `ws` client received.
 */
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import netboxMetrics from '../lib/index'
import { lines, scrape, value } from './helpers/scrape'

function open (url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket, status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('upgrade', (res) => { ws.once('open', () => resolve({ ws, status: res.statusCode ?? 0 })) })
    ws.once('unexpected-response', (_req, res) => { resolve({ ws, status: res.statusCode ?? 0 }); res.resume() })
    ws.once('error', reject)
  })
}

function closed (ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve()
    else ws.once('close', () => resolve())
  })
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50))

t.test('an upgrade completes its request with 101 at the handshake; open and closed sockets are no aborts', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await app.register(websocket)
  const serverSockets: Array<{ close: () => void }> = []
  app.get('/ws', { websocket: true }, (socket) => {
    serverSockets.push(socket)
    socket.on('message', (m: Buffer) => socket.send(`echo ${m.toString()}`))
  })
  app.get('/ws-auth', {
    websocket: true,
    preValidation: async (request, reply) => { if (request.headers['x-token'] !== 'ok') await reply.code(401).send('no') }
  }, (socket) => { socket.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`

  // Three clients stay connected while the app is scraped.
  const clients = await Promise.all([open(`${base}/ws`), open(`${base}/ws`), open(`${base}/ws`)])
  t.same(clients.map((c) => c.status), [101, 101, 101], 'the client saw three upgrades')
  const reply = new Promise<string>((resolve) => clients[0].ws.once('message', (m: Buffer) => resolve(m.toString())))
  clients[0].ws.send('hi')
  t.equal(await reply, 'echo hi', 'the socket works')
  await settle()
  let body = await scrape(app)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0, 'open websockets are not requests in flight')
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/ws",status_code="101"} 3'])
  t.equal(value(body, 'http_request_duration_seconds_count{method="GET",route="/ws",status_code="101"}'), 3)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/ws"}'), 0, 'a 101 has no body')
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/ws"}'), 0)

  // Two close from the client side, one from the server side.
  clients[0].ws.close()
  clients[1].ws.terminate()
  serverSockets[2].close()
  await Promise.all(clients.map(async (c) => await closed(c.ws)))
  await settle()

  // An upgrade refused by a hook: an ordinary 401 response.
  const refused = await open(`${base}/ws-auth`)
  t.equal(refused.status, 401)
  refused.ws.terminate()
  const accepted = await open(`${base}/ws-auth`, { 'x-token': 'ok' })
  t.equal(accepted.status, 101)
  await closed(accepted.ws)
  await settle()

  body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/ws",status_code="101"} 3',
    'http_requests_total{method="GET",route="/ws-auth",status_code="101"} 1',
    'http_requests_total{method="GET",route="/ws-auth",status_code="401"} 1'
  ])
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/ws"}'), 0, 'a closing websocket is no abort')
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/ws-auth"}'), 0)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 5, 'received = total + aborted + in flight')
})

t.test('a handshake that ws refuses on the socket (400) is a 400 response, not an abort', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await app.register(websocket)
  app.get('/ws', { websocket: true }, (socket) => { socket.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const { connect } = await import('node:net')
  const answer = await new Promise<string>((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => {
      c.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n')
    })
    let data = ''
    c.on('data', (d) => { data += d.toString('latin1') })
    c.on('close', () => resolve(data))
    c.on('error', reject)
  })
  t.match(answer, /^HTTP\/1\.1 400 /, 'ws refused the handshake')
  const message = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  t.ok(message.length > 0, `with a body of ${message.length} bytes`)
  await settle()
  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), ['http_requests_total{method="GET",route="/ws",status_code="400"} 1'])
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/ws"}'), Buffer.byteLength(message))
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/ws"}'), 0)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
})
