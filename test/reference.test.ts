/**
 * The optimized hot path records exactly what a straightforward prom-client implementation of the
 * same families records (labels object per observation, onRequest/onResponse/onError hooks),
 * over a randomized sequence of requests. Durations differ between the two by nature, so for them
 * the counts are compared; every other value is compared exactly, bucket by bucket.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } from '../lib/metrics'
import { exceptionType } from '../hooks/http'
import { samples } from './helpers/scrape'

/** The reference: what anyone would write first with prom-client. */
function referencePlugin (app: FastifyInstance, registry: Registry): void {
  const registers = [registry]
  const received = new Counter({ name: 'http_requests_received_total', help: 'r', labelNames: ['method'], registers })
  const requests = new Counter({ name: 'http_requests_total', help: 'r', labelNames: ['method', 'route', 'status_code'], registers })
  const duration = new Histogram({ name: 'http_request_duration_seconds', help: 'r', labelNames: ['method', 'route', 'status_code'], buckets: [...DEFAULT_LATENCY_BUCKETS], registers })
  const reqSize = new Histogram({ name: 'http_request_size_bytes', help: 'r', labelNames: ['method', 'route'], buckets: [...DEFAULT_SIZE_BUCKETS], registers })
  const resSize = new Histogram({ name: 'http_response_size_bytes', help: 'r', labelNames: ['method', 'route'], buckets: [...DEFAULT_SIZE_BUCKETS], registers })
  const inFlight = new Gauge({ name: 'http_requests_in_flight', help: 'r', labelNames: ['method'], registers })
  const exceptions = new Counter({ name: 'http_exceptions_total', help: 'r', labelNames: ['method', 'route', 'type'], registers })
  const supported = new Set(app.supportedMethods)
  const method = (m: string): string => supported.has(m) ? m : 'other'
  const route = (request: { routeOptions: { url?: string, config?: unknown } }): string => request.routeOptions.url ?? '__unmatched__'
  const excluded = (request: { routeOptions: { config?: unknown } }): boolean => (request.routeOptions.config as { metrics?: boolean } | undefined)?.metrics === false
  app.addHook('onRequest', async (request) => {
    if (excluded(request)) return
    received.inc({ method: method(request.method) })
    inFlight.inc({ method: method(request.method) })
  })
  app.addHook('onError', async (request, _reply, error) => {
    if (excluded(request)) return
    exceptions.inc({ method: method(request.method), route: route(request), type: exceptionType(error) })
  })
  app.addHook('onResponse', async (request, reply) => {
    if (excluded(request)) return
    const m = method(request.method)
    const r = route(request)
    inFlight.dec({ method: m })
    requests.inc({ method: m, route: r, status_code: String(reply.statusCode) })
    duration.observe({ method: m, route: r, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
    reqSize.observe({ method: m, route: r }, Number(request.headers['content-length'] ?? 0))
    const noBody = request.method === 'HEAD' || reply.statusCode === 204 || reply.statusCode === 304
    resSize.observe({ method: m, route: r }, noBody ? 0 : Number(reply.getHeader('content-length') ?? 0))
  })
}

function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296 }
}

t.test('randomized requests: optimized = reference', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const reference = new Registry()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  referencePlugin(app, reference)
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id, pad: 'x'.repeat(Number((request.query as { n?: string }).n ?? 0)) }))
  app.post('/items', async (request, reply) => { await reply.code(201).send(request.body) })
  app.put('/items/:id', { schema: { body: { type: 'object', required: ['name'] } } }, async () => ({ ok: true }))
  app.delete('/items/:id', async (_request, reply) => { await reply.code(204).send() })
  app.get('/fail/:kind', async (request) => {
    const kind = (request.params as { kind: string }).kind
    if (kind === 'type') throw new TypeError('t')
    if (kind === 'coded') throw Object.assign(new Error('c'), { code: 'ERR_CODED', statusCode: 503 })
    throw new Error('plain')
  })
  app.get('/health', { config: { metrics: false } }, async () => 'ok')

  const random = rng(20261124)
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]
  const N = 2000
  for (let i = 0; i < N; i++) {
    const kind = pick(['get', 'get', 'head', 'post', 'put', 'put-bad', 'delete', 'fail', '404', 'health', 'options', 'other'])
    const id = String(Math.floor(random() * 50))
    const size = Math.floor(random() * 5000)
    switch (kind) {
      case 'get': await app.inject(`/items/${id}?n=${size}`); break
      case 'head': await app.inject({ method: 'HEAD', url: `/items/${id}?n=${size}` }); break
      case 'post': await app.inject({ method: 'POST', url: '/items', payload: { name: 'x'.repeat(size) } }); break
      case 'put': await app.inject({ method: 'PUT', url: `/items/${id}`, payload: { name: 'y'.repeat(size) } }); break
      case 'put-bad': await app.inject({ method: 'PUT', url: `/items/${id}`, payload: { nope: size } }); break
      case 'delete': await app.inject({ method: 'DELETE', url: `/items/${id}` }); break
      case 'fail': await app.inject(`/fail/${pick(['type', 'coded', 'plain'])}`); break
      case '404': await app.inject(`/missing/${id}/${size}`); break
      case 'health': await app.inject('/health'); break
      case 'options': await app.inject({ method: 'OPTIONS', url: `/items/${id}` }); break
      case 'other': await app.inject({ method: 'PROPFIND', url: `/items/${id}` }); break
    }
  }
  await new Promise((resolve) => setImmediate(resolve))

  const ours = samples(await app.metrics.render())
  const theirs = samples(await reference.metrics())
  // prom-client puts `le` first; normalize label order on both sides.
  const normalize = (m: Map<string, number>, keep: (name: string) => boolean): Map<string, number> => {
    const out = new Map<string, number>()
    for (const [series, v] of m) {
      const match = /^([^{]+)(?:\{(.*)\})?$/.exec(series)
      if (match === null || !keep(match[1])) continue
      const labels = match[2] === undefined ? '' : (match[2].match(/[a-z_]+="(?:[^"\\]|\\.)*"/g) ?? []).sort().join(',')
      out.set(`${match[1]}{${labels}}`, v)
    }
    return out
  }
  const exact = (name: string): boolean => /^http_(requests_received_total|requests_total|request_size_bytes_.*|response_size_bytes_.*|requests_in_flight|exceptions_total)$/.test(name)
  const a = normalize(ours, exact)
  const b = normalize(theirs, exact)
  t.ok(a.size > 50, `many series compared (${a.size})`)
  t.same([...a.entries()].sort(), [...b.entries()].sort(), 'every exact family identical')
  const counts = (m: Map<string, number>): Map<string, number> => normalize(m, (n) => n === 'http_request_duration_seconds_count')
  t.same([...counts(ours).entries()].sort(), [...counts(theirs).entries()].sort(), 'duration counts identical')
  let total = 0
  for (const [k, v] of a) if (k.startsWith('http_requests_total{')) total += v
  t.ok(total > N * 0.8, `most requests counted (${total}; /health is excluded)`)
})
