/**
 * The plugin never changes the application (issue 14): what the app hands to Fastify is called
 * and awaited exactly as Fastify alone would, later `onRoute` hooks see the app's own functions,
 * and two instrumented apps on one response each count it once. Ground truth from outside the
 * package: PostgreSQL's own row count for SQL run through a real knex QueryBuilder, the
 * thenable's own tally of then() calls, the response bodies the client received.
 * (Fastify's own test suite with the plugin installed: npm run test:fastify-suite.)
 */
import t from 'tap'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { startDatabase, type StartedDatabase } from '../examples/db'
import { lines, value, sum } from './helpers/scrape'

const render = async (app: FastifyInstance): Promise<string> => await app.metrics.render()

t.test('a knex QueryBuilder returned from a handler or a non-async hook runs its SQL once', async (t) => {
  let db: StartedDatabase
  try {
    db = await startDatabase()
  } catch (err) {
    t.skip(`no PostgreSQL: ${(err as Error).message}`)
    return
  }
  t.teardown(async () => await db.stop())
  // knex 3, the query builder under @mikro-orm/knex 6.
  const knex = require('knex')({ client: 'pg', connection: db.url, pool: { min: 0, max: 2 } })
  t.teardown(async () => await knex.destroy())
  await knex.schema.createTable('hits', (table: any) => {
    table.increments('id')
    table.string('source').notNullable()
  })

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  // Handlers and hooks that are not async functions and return the QueryBuilder itself: Fastify
  // calls its then() once; the builder runs its SQL on every then().
  app.post('/handler', function (_request, _reply) { return knex('hits').insert({ source: 'handler' }).returning('id') })
  app.post('/pre-handler', {
    preHandler: function (_request, _reply) { return knex('hits').insert({ source: 'preHandler' }) }
  }, async () => ({ ok: true }))
  app.post('/on-request', {
    onRequest: function (_request, _reply) { return knex('hits').insert({ source: 'onRequest' }) }
  }, function () { return knex('hits').insert({ source: 'on-request handler' }).returning('source') })

  for (let i = 0; i < 3; i++) {
    const h = await app.inject({ method: 'POST', url: '/handler' })
    t.equal(h.statusCode, 200)
    t.same(h.json(), [{ id: i + 1 }], 'the handler answers with the one row it inserted')
  }
  const p = await app.inject({ method: 'POST', url: '/pre-handler' })
  t.equal(p.statusCode, 200)
  t.same(p.json(), { ok: true })
  const o = await app.inject({ method: 'POST', url: '/on-request' })
  t.equal(o.statusCode, 200)
  t.same(o.json(), [{ source: 'on-request handler' }])

  // PostgreSQL's count of the rows: one per then() the SQL ran on.
  const rows = await knex('hits').select('source').count('* as n').groupBy('source').orderBy('source')
  t.same(rows.map((r: { source: string, n: string }) => [r.source, Number(r.n)]), [
    ['handler', 3],
    ['on-request handler', 1],
    ['onRequest', 1],
    ['preHandler', 1]
  ])

  const body = await render(app)
  t.equal(value(body, 'http_requests_total{method="POST",route="/handler",status_code="200"}'), 3)
  t.equal(value(body, 'http_requests_total{method="POST",route="/pre-handler",status_code="200"}'), 1)
  // A hook that returns a thenable of its own is timed until Fastify's next step: its phase and
  // the handler's are both recorded, once.
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/pre-handler",phase="preHandler"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/pre-handler",phase="handler"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/on-request",phase="onRequest"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/on-request",phase="handler"}'), 1)
  t.equal(sum(body, 'metrics_errors_total'), 0)
})

/** A Mongoose-style query: runs on its first then() and refuses a second one. */
function oneShot (value: unknown): { thenCalls: number, then: (resolve: (v: unknown) => void, reject: (e: unknown) => void) => void } {
  const q = {
    thenCalls: 0,
    then (resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
      q.thenCalls++
      if (q.thenCalls > 1) {
        reject(new Error('Query was already executed'))
        return
      }
      setImmediate(() => resolve(value))
    }
  }
  return q
}

t.test('a one-shot thenable answers 200, and its then() is called once', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  const made: Array<ReturnType<typeof oneShot>> = []
  const query = (value: unknown): ReturnType<typeof oneShot> => { const q = oneShot(value); made.push(q); return q }
  app.addHook('onRequest', function (_request, _reply) { return query(undefined) as any })
  app.get('/q', function () { return query({ found: 1 }) })
  app.get('/hooked', { preHandler: function (_request, _reply) { return query(undefined) as any } }, function () { return query({ found: 2 }) })

  const a = await app.inject('/q')
  t.equal(a.statusCode, 200)
  t.equal(a.body, '{"found":1}')
  const b = await app.inject('/hooked')
  t.equal(b.statusCode, 200)
  t.equal(b.body, '{"found":2}')
  t.same(made.map((q) => q.thenCalls), [1, 1, 1, 1, 1], 'each query\'s then() was called exactly once (by Fastify)')
  const body = await render(app)
  t.equal(value(body, 'http_requests_total{method="GET",route="/hooked",status_code="200"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/hooked",phase="preHandler"}'), 1)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/hooked",phase="onRequest"}'), 1)
})

t.test('a later onRoute hook sees the route\'s own handler and hooks, before and after requests', async (t) => {
  for (const how of ['register', 'applied'] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    const fastifysAddHook = app.addHook
    if (how === 'register') await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
    else await (netboxMetrics as unknown as (app: FastifyInstance, opts: object) => Promise<void>)(app, { enabled: true, defaultMetrics: false })
    const seen: RouteOptions[] = []
    app.addHook('onRoute', (routeOptions) => { seen.push(routeOptions) })

    const handler = Object.assign(function handler () { return 'ok' }, { meta: { tag: 'admin' } })
    const pre1 = function pre1 (_request: unknown, _reply: unknown, done: () => void): void { done() }
    const pre2 = async function pre2 (): Promise<void> {}
    const onSend = function onSend (_request: unknown, _reply: unknown, payload: unknown, done: (err: null, p: unknown) => void): void { done(null, payload) }
    // Fastify's hooks.test.js: "onRoute hook should preserve handler function in options of
    // shorthand route system configuration".
    app.get('/shorthand', { preHandler: [pre1, pre2], onSend }, handler)
    app.route({ method: 'POST', url: '/full', onRequest: pre1, handler })

    const check = (when: string): void => {
      const get = seen.find((r) => r.url === '/shorthand' && r.method === 'GET') as RouteOptions & Record<string, unknown>
      const post = seen.find((r) => r.url === '/full') as RouteOptions & Record<string, unknown>
      t.equal(get.handler, handler, `${how}, ${when}: the same handler`)
      t.same(Object.keys(get.handler), ['meta'], `${how}, ${when}: its own properties`)
      t.equal((get.handler as unknown as { meta: unknown }).meta, handler.meta)
      t.equal((get.preHandler as unknown[]).length, 2)
      t.equal((get.preHandler as unknown[])[0], pre1, `${how}, ${when}: the same route-level hook`)
      t.equal((get.preHandler as unknown[])[1], pre2)
      t.equal(get.onSend, onSend)
      t.equal(post.handler, handler)
      t.equal(post.onRequest, pre1)
    }
    check('at declaration')
    await app.ready()
    t.equal((await app.inject('/shorthand')).body, 'ok')
    t.equal((await app.inject({ method: 'POST', url: '/full' })).body, 'ok')
    check('after requests')
    t.equal(app.addHook, fastifysAddHook, `${how}: addHook is still Fastify's own`)
    const body = await render(app)
    t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/shorthand",phase="preHandler"}'), 1, `${how}: the route-level hooks are timed all the same`)
    t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/shorthand",phase="onSend"}'), 1)
    t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/full",phase="onRequest"}'), 1)
  }
})

/** GET over real HTTP; resolves with status and body. */
function get (port: number, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The inner app: a plain and a streamed body (150 bytes). */
async function innerApp (plugin: unknown): Promise<FastifyInstance> {
  const inner = Fastify()
  await inner.register(plugin as typeof netboxMetrics, { enabled: true, defaultMetrics: false })
  inner.addHook('preHandler', async () => {})
  inner.get('/plain', async () => ({ hello: 'world' }))
  inner.get('/stream', async (_request, reply) => {
    reply.type('text/plain')
    return Readable.from([Buffer.alloc(100, 'a'), Buffer.alloc(50, 'b')])
  })
  await inner.ready()
  return inner
}

/** The outer app hijacks every request and hands the raw request and response to the inner app. */
async function outerApp (plugin: unknown, inner: FastifyInstance): Promise<FastifyInstance> {
  const outer = Fastify()
  await outer.register(plugin as typeof netboxMetrics, { enabled: true, defaultMetrics: false })
  outer.get('/*', (request, reply) => {
    reply.hijack()
    inner.routing(request.raw, reply.raw)
  })
  await outer.listen({ port: 0, host: '127.0.0.1' })
  return outer
}

/** A second copy of the package, as when two dependencies each bring their own. */
function secondCopy (): unknown {
  const ours = (key: string): boolean => /[\\/](lib|hooks)[\\/][^\\/]+\.(ts|js)$/.test(key) && !key.includes('node_modules')
  const saved = Object.keys(require.cache).filter(ours).map((k) => [k, require.cache[k]] as const)
  for (const [k] of saved) delete require.cache[k]
  try {
    return require('../lib/index')
  } finally {
    for (const [k, m] of saved) require.cache[k] = m
  }
}

t.test('two nested instrumented apps answer and count each request once', async (t) => {
  for (const copies of ['one copy of the package', 'two copies of the package']) {
    const inner = await innerApp(copies === 'one copy of the package' ? netboxMetrics : secondCopy())
    const outer = await outerApp(netboxMetrics, inner)
    t.teardown(() => outer.close())
    t.teardown(() => inner.close())
    t.not(inner.metrics.registry, outer.metrics.registry)
    const port = (outer.server.address() as AddressInfo).port
    const N = 4
    for (let i = 0; i < N; i++) {
      t.same(await get(port, '/plain'), { status: 200, body: '{"hello":"world"}' }, copies)
      t.same(await get(port, '/stream'), { status: 200, body: 'a'.repeat(100) + 'b'.repeat(50) }, copies)
    }
    // Settled from Node's finish channel right after the last byte; give it the turn.
    await new Promise((resolve) => setImmediate(resolve))

    const ib = await render(inner)
    t.same(lines(ib, 'http_requests_total'), [
      `http_requests_total{method="GET",route="/plain",status_code="200"} ${N}`,
      `http_requests_total{method="GET",route="/stream",status_code="200"} ${N}`
    ], `${copies}: the inner app counts each request once`)
    t.same(lines(ib, 'http_requests_in_flight'), ['http_requests_in_flight{method="GET"} 0'])
    t.equal(value(ib, 'http_response_size_bytes_sum{method="GET",route="/plain"}'), 17 * N)
    t.equal(value(ib, 'http_response_size_bytes_sum{method="GET",route="/stream"}'), 150 * N, `${copies}: streamed bytes counted once`)
    t.equal(value(ib, 'http_request_phase_duration_seconds_count{route="/stream",phase="handler"}'), N)
    t.equal(sum(ib, 'metrics_errors_total'), 0)

    const ob = await render(outer)
    t.same(lines(ob, 'http_requests_total'), [
      `http_requests_total{method="GET",route="/*",status_code="200"} ${2 * N}`
    ], `${copies}: the outer app counts each request once`)
    t.same(lines(ob, 'http_requests_received_total'), [`http_requests_received_total{method="GET"} ${2 * N}`])
    t.same(lines(ob, 'http_requests_in_flight'), ['http_requests_in_flight{method="GET"} 0'], `${copies}: in flight back to 0`)
    t.equal(sum(ob, 'http_requests_aborted_total'), 0)
    t.equal(sum(ob, 'metrics_errors_total'), 0)
  }
})
