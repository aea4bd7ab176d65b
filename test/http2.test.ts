/**
 * HTTP/2 (Fastify's `http2: true`, a `node:http2` client): request sizes of uploads without a
 * content-length header are the bytes read, as for chunked HTTP/1 bodies; responses and the
 * in-flight gauge as over HTTP/1; a stream the server destroys is the server's failure and a stream
 * the client resets an abort. Ground truth: what the client sent, received and saw end.
 */
import t from 'tap'
import Fastify from 'fastify'
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { sleep } from './helpers/net'
import { lines, scrape, value } from './helpers/scrape'

interface Answer { status: number, body: Buffer }

function request (client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, chunks: Buffer[] = []): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = client.request(headers, { endStream: chunks.length === 0 })
    let status = 0
    const body: Buffer[] = []
    stream.on('response', (h) => { status = Number(h[':status']) })
    stream.on('data', (d: Buffer) => body.push(d))
    stream.on('end', () => resolve({ status, body: Buffer.concat(body) }))
    stream.on('error', reject)
    for (const c of chunks) stream.write(c)
    if (chunks.length > 0) stream.end()
  })
}

t.test('HTTP/2 uploads without content-length count the bytes read', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.post('/echo', async (req) => req.body)
  app.get('/item', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http2.connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  t.teardown(() => client.close())

  // 3 chunks, no content-length: 1000 + 2000 + 3000 bytes of JSON.
  const json = Buffer.from(JSON.stringify({ pad: 'x'.repeat(5990) }))
  t.equal(json.length, 6000)
  const chunks = [json.subarray(0, 1000), json.subarray(1000, 3000), json.subarray(3000)]
  const echoed = await request(client, { ':method': 'POST', ':path': '/echo', 'content-type': 'application/json' }, chunks)
  t.equal(echoed.status, 200)
  t.equal(echoed.body.length, 6000)
  // With content-length: the header.
  const small = Buffer.from('{"a":1}')
  await request(client, { ':method': 'POST', ':path': '/echo', 'content-type': 'application/json', 'content-length': String(small.length) }, [small])
  // No body at all.
  const got = await request(client, { ':method': 'GET', ':path': '/item' })

  const body = await scrape(app)
  t.equal(value(body, 'http_request_size_bytes_count{method="POST",route="/echo"}'), 2)
  t.equal(value(body, 'http_request_size_bytes_sum{method="POST",route="/echo"}'), 6000 + small.length, 'bytes read, as the client sent them')
  t.equal(value(body, 'http_request_size_bytes_bucket{method="POST",route="/echo",le="4096"}'), 1, 'the 7-byte one')
  t.equal(value(body, 'http_request_size_bytes_bucket{method="POST",route="/echo",le="16384"}'), 2, 'the 6000-byte one')
  t.equal(value(body, 'http_request_size_bytes_sum{method="GET",route="/item"}'), 0)
  t.equal(value(body, 'http_response_size_bytes_sum{method="POST",route="/echo"}'), 6000 + small.length)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/item"}'), got.body.length)
  t.equal(value(body, 'http_requests_in_flight{method="POST"}'), 0)
  t.equal(value(body, 'http_requests_total{method="POST",route="/echo",status_code="200"}'), 2)
})

t.test('an HTTP/2 stream the client resets before the response is an abort', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  let arrived: () => void = () => {}
  const inHandler = new Promise<void>((resolve) => { arrived = resolve })
  app.get('/slow', async () => { arrived(); await new Promise((resolve) => setTimeout(resolve, 200)); return 'late' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http2.connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  t.teardown(() => client.close())
  const stream = client.request({ ':method': 'GET', ':path': '/slow' })
  stream.on('error', () => {})
  await inHandler
  stream.close(http2.constants.NGHTTP2_CANCEL)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const body = await scrape(app)
  t.equal(value(body, 'http_requests_aborted_total{method="GET",route="/slow"}'), 1)
  t.equal(value(body, 'http_requests_total{method="GET",route="/slow",status_code="200"}'), undefined)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 1)
})

/**
 * What an HTTP/2 client saw of one request: the status (0 when none came), the body bytes, and the
 * RST_STREAM code the stream closed with (NGHTTP2_NO_ERROR also closes a stream the server cut
 * without an error: the missing end is then the missing status or body).
 */
interface Seen { status: number, bytes: number, rstCode: number | undefined }
function watch (stream: http2.ClientHttp2Stream): Promise<Seen> {
  return new Promise((resolve) => {
    let status = 0
    let bytes = 0
    stream.on('response', (h) => { status = Number(h[':status']) })
    stream.on('data', (d: Buffer) => { bytes += d.length })
    stream.on('error', () => {})
    stream.on('close', () => resolve({ status, bytes, rstCode: stream.rstCode }))
  })
}

t.test('an HTTP/2 stream the server destroys before the response completed is the server\'s failure, never an abort', async (t) => {
  const app = Fastify({ http2: true, logger: false })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  // A reply stream that fails after two chunks: Fastify destroys the response.
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
  // The app destroys the stream before any status (no error), and after its status (with one).
  app.get('/destroy-early', async (request) => { await sleep(20); request.raw.stream.destroy(); return await new Promise(() => {}) })
  app.get('/destroy-late', (_request, reply) => {
    reply.raw.writeHead(202, { 'content-type': 'text/plain' })
    reply.raw.write('part')
    setTimeout(() => reply.raw.stream.destroy(new Error('cut')), 20)
    reply.hijack()
  })
  // The client leaves: it cancels its stream, or its whole connection goes.
  let arrived: () => void = () => {}
  app.get('/slow', async () => { arrived(); await sleep(200); return 'late' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const client = http2.connect(url)
  client.on('error', () => {})
  t.teardown(() => client.close())

  const failed = await watch(client.request({ ':path': '/stream' }))
  t.same(failed, { status: 200, bytes: 200, rstCode: http2.constants.NGHTTP2_NO_ERROR }, 'the client received the 200 and two chunks, then the stream closed (Fastify destroys the response without an error)')
  const early = await watch(client.request({ ':path': '/destroy-early' }))
  t.same(early, { status: 0, bytes: 0, rstCode: http2.constants.NGHTTP2_NO_ERROR }, 'no status received')
  const late = await watch(client.request({ ':path': '/destroy-late' }))
  t.same(late, { status: 202, bytes: 4, rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR }, 'a 202 and 4 bytes, then a reset')

  for (const how of ['cancel', 'connection'] as const) {
    const inHandler = new Promise<void>((resolve) => { arrived = resolve })
    const session = http2.connect(url)
    session.on('error', () => {})
    const stream = session.request({ ':path': '/slow' })
    stream.on('error', () => {})
    await inHandler
    if (how === 'cancel') stream.close(http2.constants.NGHTTP2_CANCEL)
    else session.destroy()
    await sleep(50)
    session.destroy()
  }
  await sleep(300)

  const body = await scrape(app)
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/destroy-early",status_code="0"} 1',
    'http_requests_total{method="GET",route="/destroy-late",status_code="202"} 1',
    'http_requests_total{method="GET",route="/stream",status_code="200"} 1'
  ])
  t.same(lines(body, 'http_exceptions_total'), [
    'http_exceptions_total{method="GET",route="/destroy-early",type="ERR_STREAM_PREMATURE_CLOSE"} 1',
    'http_exceptions_total{method="GET",route="/destroy-late",type="ERR_STREAM_PREMATURE_CLOSE"} 1',
    'http_exceptions_total{method="GET",route="/stream",type="ERR_STREAM_PREMATURE_CLOSE"} 1'
  ])
  t.same(lines(body, 'http_requests_aborted_total'), [
    'http_requests_aborted_total{method="GET",route="/destroy-early"} 0',
    'http_requests_aborted_total{method="GET",route="/destroy-late"} 0',
    'http_requests_aborted_total{method="GET",route="/slow"} 2',
    'http_requests_aborted_total{method="GET",route="/stream"} 0'
  ], 'only the client leaving is an abort')
  t.same(lines(body, 'http_response_size_bytes_sum'), [
    'http_response_size_bytes_sum{method="GET",route="/destroy-early"} 0',
    'http_response_size_bytes_sum{method="GET",route="/destroy-late"} 4',
    'http_response_size_bytes_sum{method="GET",route="/slow"} 0',
    'http_response_size_bytes_sum{method="GET",route="/stream"} 200'
  ], 'the bytes the client received')
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
  t.equal(value(body, 'http_requests_received_total{method="GET"}'), 5)
})
