import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'

async function app (opts: Record<string, unknown> = {}) {
  const a = Fastify()
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, ...opts })
  return a
}

function lines (body: string, name: string): string[] {
  return body.split('\n').filter((l) => l.startsWith('cache_') && l.includes(`cache="${name}"`))
}

function expected (name: string, v: { get: number, hits: number, misses: number, fail: number, set: number, inv: number }): string[] {
  return [
    `cache_get_total{cache="${name}"} ${v.get}`,
    `cache_get_hits_total{cache="${name}"} ${v.hits}`,
    `cache_get_misses_total{cache="${name}"} ${v.misses}`,
    `cache_get_fail_total{cache="${name}"} ${v.fail}`,
    `cache_set_total{cache="${name}"} ${v.set}`,
    `cache_invalidations_total{cache="${name}"} ${v.inv}`
  ]
}

t.test('a Map: exact counts for hits, misses, sets, deletes and clear', async (t) => {
  const a = await app()
  t.teardown(() => a.close())
  const raw = new Map<string, number | null>()
  const m = a.metrics.instrumentCache(raw, { name: 'sessions' })
  t.ok(m instanceof Map, 'still a Map')
  t.equal(m.get('a'), undefined) // miss
  t.equal(m.set('a', 1), m, 'set returns the wrapper, as Map#set returns the map')
  m.set('b', 2)
  m.set('n', null)
  t.equal(m.get('a'), 1) // hit
  t.equal(m.get('b'), 2) // hit
  t.equal(m.get('n'), null) // a cached null is a miss
  t.equal(m.size, 3, 'getters pass through')
  t.same([...m.keys()], ['a', 'b', 'n'], 'iteration passes through')
  t.equal(m.has('a'), true, 'has is not a read')
  t.equal(m.delete('a'), true)
  t.equal(m.delete('zzz'), false)
  t.equal(m.get('a'), undefined) // miss
  m.clear()
  t.equal(raw.size, 0, 'the real Map was cleared')
  const body = (await a.inject('/metrics')).body
  t.same(lines(body, 'sessions'), expected('sessions', { get: 5, hits: 2, misses: 3, fail: 0, set: 3, inv: 3 }))
  t.match(body, /^# TYPE cache_get_total counter$/m)
})

t.test('an async cache whose reads fail: the error reaches the caller, the failure is counted', async (t) => {
  const a = await app()
  t.teardown(() => a.close())
  const boom = new Error('backend down')
  let down = false
  const store = new Map<string, string>()
  const cache = {
    async get (k: string): Promise<string | undefined> { if (down) throw boom; return store.get(k) },
    async set (k: string, v: string): Promise<void> { store.set(k, v) },
    async delete (k: string): Promise<boolean> { return store.delete(k) },
    async clear (): Promise<void> { store.clear() },
    extra: 42
  }
  const c = a.metrics.instrumentCache(cache, { name: 'remote' })
  await c.set('k', 'v')
  t.equal(await c.get('k'), 'v')
  t.equal(await c.get('x'), undefined)
  down = true
  await t.rejects(c.get('k'), boom, 'the same error object')
  const syncFail = a.metrics.instrumentCache({ get () { throw boom }, set () {} }, { name: 'sync' })
  t.throws(() => syncFail.get(), boom)
  t.equal(c.extra, 42)
  t.equal(await c.delete('k'), true)
  await c.clear()
  const body = (await a.inject('/metrics')).body
  t.same(lines(body, 'remote'), expected('remote', { get: 3, hits: 1, misses: 1, fail: 1, set: 1, inv: 2 }))
  t.same(lines(body, 'sync'), expected('sync', { get: 1, hits: 0, misses: 0, fail: 1, set: 0, inv: 0 }))
  t.match(body, /^metrics_errors_total\{component="cache"\} 0$/m, 'no internal error')
})

t.test('unsupported shapes and bad options throw coded errors', async (t) => {
  const a = await app()
  t.teardown(() => a.close())
  t.throws(() => a.metrics.instrumentCache({} as object, { name: 'x' }), { code: 'FNM_ERR_OPTION_INVALID' })
  t.throws(() => a.metrics.instrumentCache(new Map(), { name: '' }), { code: 'FNM_ERR_OPTION_INVALID' })
  t.throws(() => a.metrics.instrumentCache(new Map(), { name: 'x', ttl: 1 } as never), { code: 'FNM_ERR_OPTION_UNKNOWN' })
})

t.test('frozen and locked caches: counted, or refused at wrap time, never a Proxy TypeError later', async (t) => {
  const a = await app()
  t.teardown(() => a.close())
  // A frozen object literal: its own get/set/delete are read-only and non-configurable, which a
  // Proxy may not replace (before: a TypeError on every get and set).
  const store = new Map<string, number>()
  const plain = Object.freeze({
    store,
    get (k: string) { return this.store.get(k) },
    set (k: string, v: number) { this.store.set(k, v); return this },
    delete (k: string) { return this.store.delete(k) },
    size () { return this.store.size }
  })
  const c = a.metrics.instrumentCache(plain, { name: 'frozen' })
  t.equal(c.get('a'), undefined)
  t.equal(c.set('a', 1), c, 'set returns the wrapper, as the cache returns itself')
  t.equal(c.get('a'), 1)
  t.equal(c.delete('a'), true)
  t.equal(c.size(), 0)
  t.equal(c.store, store, 'properties read through')
  t.ok(Object.isFrozen(c), 'the wrapper is frozen like the cache')
  t.equal(c.size, plain.size, 'methods that are not counted keep their identity')
  t.throws(() => { (c as { store: unknown }).store = null }, TypeError, 'as read-only as the cache')

  // Frozen instances whose methods live on the prototype (a frozen Map, a frozen class instance): the Proxy is fine.
  class Lru { private readonly m = new Map<string, number>(); constructor () { Object.freeze(this) } get (k: string) { return this.m.get(k) } set (k: string, v: number) { this.m.set(k, v) } }
  const lru = a.metrics.instrumentCache(new Lru(), { name: 'frozen-class' })
  t.ok(lru instanceof Lru)
  lru.set('x', 1)
  t.equal(lru.get('x'), 1)
  const frozenMap = a.metrics.instrumentCache(Object.freeze(new Map<string, number>()), { name: 'frozen-map' })
  frozenMap.set('x', 1)
  t.equal(frozenMap.get('x'), 1)
  t.equal(frozenMap.get('y'), undefined)

  // Not frozen, but a counted method locked with defineProperty: refused now, with a code.
  const locked = { set (_k: string, _v: unknown) {} } as { get: (k: string) => unknown, set: (k: string, v: unknown) => void, size: () => number }
  Object.defineProperty(locked, 'get', { value: (_k: string) => 1, writable: false, configurable: false, enumerable: true })
  t.throws(() => a.metrics.instrumentCache(locked, { name: 'locked' }), { code: 'FNM_ERR_CACHE_UNWRAPPABLE', message: /method 'get' is read-only and non-configurable/ })
  // A locked method that is not counted is simply handed out as it is.
  const partly = { get (_k: string) { return 1 }, set (_k: string, _v: unknown) {} } as { get: (k: string) => unknown, set: (k: string, v: unknown) => void, size: () => number }
  const size = (): number => 7
  Object.defineProperty(partly, 'size', { value: size, writable: false, configurable: false })
  const p = a.metrics.instrumentCache(partly, { name: 'partly' })
  t.equal(p.size, size)
  t.equal(p.get('k'), 1)

  const body = (await a.inject('/metrics')).body
  t.same(lines(body, 'frozen'), expected('frozen', { get: 2, hits: 1, misses: 1, fail: 0, set: 1, inv: 1 }))
  t.same(lines(body, 'frozen-class'), expected('frozen-class', { get: 1, hits: 1, misses: 0, fail: 0, set: 1, inv: 0 }))
  t.same(lines(body, 'frozen-map'), expected('frozen-map', { get: 2, hits: 1, misses: 1, fail: 0, set: 1, inv: 0 }))
  t.same(lines(body, 'partly'), expected('partly', { get: 1, hits: 1, misses: 0, fail: 0, set: 0, inv: 0 }))
  t.same(lines(body, 'locked'), [], 'a refused cache has no series')
  t.equal(lines(body, 'frozen-map').length, 6)
})

t.test('disabled plugin: instrumentCache returns the cache itself', async (t) => {
  const a = Fastify()
  t.teardown(() => a.close())
  await a.register(netboxMetrics, { enabled: false })
  const m = new Map()
  t.equal(a.metrics.instrumentCache(m, { name: 'x' }), m)
})

t.test('late binding: a standalone wrapper counts into the first enabled plugin, then the next', async (t) => {
  const early = netboxMetrics.instrumentCache(new Map<string, number>(), { name: 'early' })
  early.get('a') // miss, counted while no plugin exists
  early.set('a', 1)
  early.get('a') // hit
  const a = await app()
  let body = (await a.inject('/metrics')).body
  t.same(lines(body, 'early'), expected('early', { get: 2, hits: 1, misses: 1, fail: 0, set: 1, inv: 0 }), 'counts replayed on registration')
  early.get('a')
  const late = netboxMetrics.instrumentCache(new Map(), { name: 'late' })
  late.get('x')
  body = (await a.inject('/metrics')).body
  t.same(lines(body, 'early'), expected('early', { get: 3, hits: 2, misses: 1, fail: 0, set: 1, inv: 0 }))
  t.same(lines(body, 'late'), expected('late', { get: 1, hits: 0, misses: 1, fail: 0, set: 0, inv: 0 }), 'wrapped after registration: bound at once')
  // A second app does not take the caches over while the first is open.
  const b = await app()
  early.delete('a')
  t.same(lines((await b.inject('/metrics')).body, 'early'), [])
  await b.close()
  await a.close()
  // After the primary closed, counts wait for the next enabled plugin.
  early.get('zz')
  const c = await app()
  t.teardown(() => c.close())
  body = (await c.inject('/metrics')).body
  t.same(lines(body, 'early'), expected('early', { get: 1, hits: 0, misses: 1, fail: 0, set: 0, inv: 0 }), 'only what was counted since')
})
