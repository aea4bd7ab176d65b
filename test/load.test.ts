/**
 * A bounded loopback load test: 200,000 requests on 256 keep-alive connections, mixed routes and
 * statuses, with random client aborts. Afterwards the counters equal exactly what the load tool
 * recorded as sent, completed (by route and status) and aborted.
 */
import t from 'tap'
import Fastify from 'fastify'
import net from 'node:net'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import netboxMetrics from '../lib/index'
import { samples, sum } from './helpers/scrape'

const TOTAL = Number(process.env.LOAD_TOTAL ?? 200_000)
const CONNECTIONS = 256

t.test(`${TOTAL} requests, ${CONNECTIONS} connections, random aborts`, { timeout: 300_000 }, async (t) => {
  const app = Fastify({ logger: false, keepAliveTimeout: 60_000 })
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/ok', async () => 'ok')
  app.get('/created', async (_request, reply) => { await reply.code(201).send({ created: true }) })
  app.get('/fail', async () => { throw new Error('fails on purpose') })
  app.get('/json/:id', async (request) => ({ id: (request.params as { id: string }).id, items: [1, 2, 3] }))
  app.get('/hold', (_request, reply) => {
    // Headers go out at once; the body never ends, so the client's close is an abort.
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('partial')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port

  const started = Date.now()
  const result = await new Promise<{ sent: number, completed: Record<string, number>, aborted: number, errors: number }>((resolve, reject) => {
    const worker = new Worker(join(__dirname, 'fixtures', 'load-client.js'), { workerData: { port, total: TOTAL, connections: CONNECTIONS, abortRatio: 0.01, seed: 12345 } })
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  t.comment(`${TOTAL} requests in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  await new Promise((resolve) => setTimeout(resolve, 200))

  const body = (await app.inject('/metrics')).body
  const s = samples(body)
  const completed = Object.values(result.completed).reduce((a, b) => a + b, 0)
  t.equal(result.errors, 0, 'no socket errors')
  t.equal(result.sent, TOTAL)
  t.equal(completed + result.aborted, TOTAL)
  t.ok(result.aborted > 0, `aborts happened (${result.aborted})`)
  t.equal(sum(body, 'http_requests_received_total'), result.sent, 'received = sent')
  t.equal(sum(body, 'http_requests_total'), completed, 'completed')
  t.equal(sum(body, 'http_requests_aborted_total'), result.aborted, 'aborted')
  t.equal(sum(body, 'http_requests_in_flight'), 0, 'nothing in flight')
  const route = (path: string): string => path === '/missing' ? '__unmatched__' : path === '/json/1' ? '/json/:id' : path
  for (const [key, n] of Object.entries(result.completed)) {
    const [path, status] = key.split(' ')
    t.equal(s.get(`http_requests_total{method="GET",route="${route(path)}",status_code="${status}"}`), n, key)
  }
  t.equal(s.get('http_exceptions_total{method="GET",route="/fail",type="Error"}'), result.completed['/fail 500'])
})
