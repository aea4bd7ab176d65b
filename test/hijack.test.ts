/**
 * `reply.hijack()`: the app writes the response itself on the raw response. Its size is the body
 * bytes sent, however the app sends them: headers passed inline to res.writeHead(), the body
 * through res.end(chunk), res.write() then res.end(chunk). Ground truth: the body bytes the
 * client received over a real socket.
 */
import t from 'tap'
import Fastify from 'fastify'
import http from 'node:http'
import netboxMetrics from '../lib/index'
import { scrape, value } from './helpers/scrape'

function get (port: number, path: string): Promise<{ status: number, bytes: number }> {
  return new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      let bytes = 0
      res.on('data', (d: Buffer) => { bytes += d.length })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }))
    }).on('error', reject)
  })
}

t.test('hijacked replies: the response size is the body bytes sent', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/inline-length', async (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-length': '500' })
    reply.raw.end(Buffer.alloc(500, 97))
  })
  app.get('/end-chunk', async (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(201, { 'content-type': 'text/plain; charset=utf-8' })
    reply.raw.end('é'.repeat(150)) // 300 bytes in UTF-8, chunked
  })
  app.get('/end-only', async (_req, reply) => {
    reply.hijack()
    reply.raw.end('x'.repeat(42)) // implicit headers
  })
  app.get('/write-end', async (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200)
    reply.raw.write('abc')
    reply.raw.write(Buffer.from('defg'))
    reply.raw.end('hi', 'latin1')
  })
  app.get('/hex', async (_req, reply) => {
    reply.hijack()
    reply.raw.end('00ff00ff', 'hex') // 4 bytes
  })
  app.get('/normal', async () => 'x'.repeat(77))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  const received: Record<string, number> = {}
  for (const path of ['/inline-length', '/end-chunk', '/end-only', '/write-end', '/hex', '/normal']) {
    const r = await get(port, path)
    received[path] = r.bytes
  }
  t.same(received, { '/inline-length': 500, '/end-chunk': 300, '/end-only': 42, '/write-end': 9, '/hex': 4, '/normal': 77 }, 'what the client received')
  await new Promise((resolve) => setTimeout(resolve, 20))
  const body = await scrape(app)
  for (const [path, bytes] of Object.entries(received)) {
    t.equal(value(body, `http_response_size_bytes_sum{method="GET",route="${path}"}`), bytes, `${path}: ${bytes} bytes`)
    t.equal(value(body, `http_response_size_bytes_count{method="GET",route="${path}"}`), 1)
  }
  t.equal(value(body, 'http_requests_total{method="GET",route="/end-chunk",status_code="201"}'), 1)
  t.equal(value(body, 'http_requests_in_flight{method="GET"}'), 0)
})
