/**
 * Every HTTP family, with exact values after a known sequence of requests made with app.inject.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Readable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { lines, promtoolCheck, hasPromtool, scrape, sum, value } from './helpers/scrape'

class TeapotError extends Error {}

async function buildApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  // An application hook added after the plugin: timed as the onRequest phase.
  app.addHook('onRequest', (_request, _reply, done) => { done() })
  app.get('/item/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.post('/echo', async (request) => request.body)
  app.post('/validated', { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } }, async () => ({ ok: true }))
  app.get('/boom', async () => { throw new TypeError('boom') })
  app.get('/teapot', { preHandler: async () => { throw new TeapotError('no coffee') } }, async () => 'never')
  app.get('/stream', async (_request, reply) => {
    reply.type('text/plain')
    return Readable.from([Buffer.alloc(100), Buffer.alloc(50)])
  })
  app.get('/empty', async (_request, reply) => { await reply.code(204).send() })
  app.get('/slow-pre', { preHandler: async () => { await new Promise((resolve) => setTimeout(resolve, 20)) } }, async () => 'ok')
  return app
}

t.test('exact values for every HTTP family after a known sequence', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())

  for (let i = 0; i < 7; i++) await app.inject('/item/42') // 7 x 200, body {"id":"42"} = 11 bytes
  await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } }) // 7 bytes in, 7 out
  await app.inject({ method: 'POST', url: '/validated', payload: { nope: true } }) // 400
  await app.inject('/boom') // 500 TypeError
  await app.inject('/teapot') // 500 TeapotError from a hook
  await app.inject('/stream') // 150 bytes streamed
  await app.inject('/empty') // 204
  await app.inject('/slow-pre') // preHandler >= 20 ms
  await app.inject('/does/not/exist') // 404
  await app.inject('/does/not/exist/either') // 404
  await app.inject({ method: 'HEAD', url: '/item/1' }) // HEAD: no body
  await app.inject({ method: 'PROPFIND', url: '/item/1' }) // unsupported method

  const body = await scrape(app)

  t.same(lines(body, 'http_requests_received_total'), [
    'http_requests_received_total{method="GET"} 14',
    'http_requests_received_total{method="HEAD"} 1',
    'http_requests_received_total{method="POST"} 2',
    'http_requests_received_total{method="other"} 1'
  ])
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/boom",status_code="500"} 1',
    'http_requests_total{method="GET",route="/empty",status_code="204"} 1',
    'http_requests_total{method="GET",route="/item/:id",status_code="200"} 7',
    'http_requests_total{method="GET",route="/slow-pre",status_code="200"} 1',
    'http_requests_total{method="GET",route="/stream",status_code="200"} 1',
    'http_requests_total{method="GET",route="/teapot",status_code="500"} 1',
    'http_requests_total{method="GET",route="__unmatched__",status_code="404"} 2',
    'http_requests_total{method="HEAD",route="/item/:id",status_code="200"} 1',
    'http_requests_total{method="POST",route="/echo",status_code="200"} 1',
    'http_requests_total{method="POST",route="/validated",status_code="400"} 1',
    'http_requests_total{method="other",route="__unmatched__",status_code="404"} 1'
  ])

  // Duration: one observation per completed request, all in +Inf, count equals the counter.
  t.equal(value(body, 'http_request_duration_seconds_count{method="GET",route="/item/:id",status_code="200"}'), 7)
  t.equal(value(body, 'http_request_duration_seconds_bucket{method="GET",route="/item/:id",status_code="200",le="+Inf"}'), 7)
  t.equal(sum(body, 'http_request_duration_seconds_count'), 18)
  t.ok((value(body, 'http_request_duration_seconds_sum{method="GET",route="/slow-pre",status_code="200"}') ?? 0) >= 0.019, 'slow route took its 20 ms')
  t.equal(value(body, 'http_request_duration_seconds_bucket{method="GET",route="/slow-pre",status_code="200",le="0.01"}'), 0)

  // Phases: the handler of every route registered after the plugin, the app's onRequest hook
  // for every request, the route-level preHandler hooks.
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/item/:id",phase="handler"}'), 8)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/item/:id",phase="onRequest"}'), 8)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/slow-pre",phase="preHandler"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_bucket{route="/slow-pre",phase="preHandler",le="0.01"}'), 0)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/teapot",phase="preHandler"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/teapot",phase="handler"}'), undefined, 'the handler never ran')
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="__unmatched__",phase="onRequest"}'), 3)

  // Sizes.
  t.equal(value(body, 'http_request_size_bytes_sum{method="POST",route="/echo"}'), 7)
  t.equal(value(body, 'http_request_size_bytes_bucket{method="POST",route="/echo",le="16"}'), 1)
  t.equal(value(body, 'http_request_size_bytes_sum{method="GET",route="/item/:id"}'), 0)
  t.equal(value(body, 'http_request_size_bytes_count{method="GET",route="/item/:id"}'), 7)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/item/:id"}'), 77)
  t.equal(value(body, 'http_response_size_bytes_sum{method="POST",route="/echo"}'), 7)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/stream"}'), 150, 'streamed bytes are counted')
  t.equal(value(body, 'http_response_size_bytes_bucket{method="GET",route="/stream",le="64"}'), 0)
  t.equal(value(body, 'http_response_size_bytes_bucket{method="GET",route="/stream",le="256"}'), 1)
  t.equal(value(body, 'http_response_size_bytes_sum{method="GET",route="/empty"}'), 0)
  t.equal(value(body, 'http_response_size_bytes_sum{method="HEAD",route="/item/:id"}'), 0, 'HEAD carries no body')

  // In flight back to zero, nothing aborted under inject.
  t.same(lines(body, 'http_requests_in_flight'), [
    'http_requests_in_flight{method="GET"} 0',
    'http_requests_in_flight{method="HEAD"} 0',
    'http_requests_in_flight{method="POST"} 0',
    'http_requests_in_flight{method="other"} 0'
  ])
  t.equal(sum(body, 'http_requests_aborted_total'), 0)

  t.same(lines(body, 'http_exceptions_total'), [
    'http_exceptions_total{method="GET",route="/boom",type="TypeError"} 1',
    'http_exceptions_total{method="GET",route="/teapot",type="TeapotError"} 1',
    'http_exceptions_total{method="POST",route="/validated",type="FST_ERR_VALIDATION"} 1'
  ])

  // The invariant: received = completed + aborted + in flight.
  t.equal(sum(body, 'http_requests_received_total'), sum(body, 'http_requests_total') + sum(body, 'http_requests_aborted_total') + sum(body, 'http_requests_in_flight'))
  t.equal(sum(body, 'metrics_errors_total'), 0)

  if (hasPromtool()) t.same(promtoolCheck(body), [], 'promtool check metrics passes')
})

t.test('types and help lines follow the spec', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.inject('/item/1')
  const body = await scrape(app)
  const types = body.split('\n').filter((l) => l.startsWith('# TYPE http_'))
  t.same(types, [
    '# TYPE http_requests_received_total counter',
    '# TYPE http_requests_total counter',
    '# TYPE http_request_duration_seconds histogram',
    '# TYPE http_request_phase_duration_seconds histogram',
    '# TYPE http_request_size_bytes histogram',
    '# TYPE http_response_size_bytes histogram',
    '# TYPE http_requests_in_flight gauge',
    '# TYPE http_requests_aborted_total counter',
    '# TYPE http_exceptions_total counter'
  ])
  // Default latency buckets, in order.
  const le = body.split('\n')
    .filter((l) => l.startsWith('http_request_duration_seconds_bucket{method="GET",route="/item/:id"'))
    .map((l) => /le="([^"]+)"/.exec(l)?.[1])
  t.same(le, ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '25', '50', '+Inf'])
})
