/**
 * HTTP/2 (Fastify's `http2: true`, a `node:http2` client): request sizes of uploads without a
 * content-length header are the bytes read, as for chunked HTTP/1 bodies; responses and the
 * in-flight gauge as over HTTP/1. Ground truth: the bytes the client sent and received.
 */
import t from 'tap'
import Fastify from 'fastify'
import http2 from 'node:http2'
import netboxMetrics from '../lib/index'
import { scrape, value } from './helpers/scrape'

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
