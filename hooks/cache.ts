/**
 * Where the cache families are observed: application caches wrapped with `instrumentCache()` and
 * MikroORM's result cache wrapped by `InstrumentedCacheAdapter`.
 *
 * Supported cache shapes (decided once, when the cache is wrapped):
 * - a `Map` (or a subclass): `get` (a read), `set` (a write), `delete` (one invalidation),
 *   `clear` (one invalidation);
 * - a Redis client used as a cache, recognised by `get`, `set` and `del` plus `sendCommand`
 *   (node-redis v4/v5) or `call` (ioredis): reads `get`, `getDel`, `getEx` (one each) and `mGet`
 *   (one per key, hits and misses per key); writes `set`, `setEx`, `pSetEx`, `setNX`, `getSet`
 *   (one each) and `mSet`, `mSetNX` (one per key); invalidations `del`, `unlink`, `getDel` (one
 *   per key) and `flushDb`, `flushAll` (one). Method names are matched case-insensitively, so
 *   node-redis's `GET` and ioredis's `getdel` are counted too. Commands inside `multi()` or
 *   `pipeline()` and clients made by `duplicate()` are not counted;
 * - any other object with a `get` and a `set` method, sync or async (Keyv, lru-cache,
 *   cache-manager, a MikroORM CacheAdapter...): `get` (a read), `set` (a write), `delete`,
 *   `del` or `remove` (one invalidation per call), `clear` or `reset` (one invalidation).
 *
 * A read that returns (or resolves to) `undefined` or `null` is a miss, anything else a hit; a
 * read that throws or rejects counts in `cache_get_fail_total` and its error reaches the caller
 * unchanged. Every other property and method passes through untouched (methods run with the
 * real cache as `this`), and a method that returns (or, for a Redis client, resolves to) the cache itself, like
 * node-redis's `connect()`, returns the wrapper instead. A frozen cache whose counted methods
 * are its own properties gets a frozen twin instead of a Proxy (see frozenTwin); a counted method
 * locked with defineProperty on a cache that is not frozen is refused when wrapped.
 *
 * Late binding: a cache wrapped with `app.metrics.instrumentCache()` counts into that app's
 * registry. A cache wrapped with the standalone `instrumentCache()` (or an
 * `InstrumentedCacheAdapter`, which MikroORM constructs) counts into the registry of the
 * process's primary plugin: the first enabled plugin registered that is not closed yet. Until
 * one registers, counts are kept in the wrapper and added to that plugin's families when it
 * registers; when the primary app closes, its standalone caches keep counting in the wrapper
 * again until the next enabled plugin registers.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { FNM_ERR_CACHE_UNWRAPPABLE, FNM_ERR_OPTION_INVALID, FNM_ERR_OPTION_UNKNOWN } from '../lib/errors'
import type { MetricSet } from '../lib/metrics'

/** Options of `instrumentCache()`. */
export interface InstrumentCacheOptions {
  /** The `cache` label value of every series of this cache. Two caches with one name add up. */
  name: string
}

/** A counter slot: a series of a family once bound, a plain object before. */
interface Slot { value: number }

/** The six counters of one cache, plus errors caught inside the wrapper. */
interface Slots {
  get: Slot
  hits: Slot
  misses: Slot
  fails: Slot
  sets: Slot
  invalidations: Slot
}

function localSlots (): Slots {
  return { get: { value: 0 }, hits: { value: 0 }, misses: { value: 0 }, fails: { value: 0 }, sets: { value: 0 }, invalidations: { value: 0 } }
}

/**
 * Counts for one wrapped cache. Before it is bound to a `MetricSet` it counts into local slots;
 * binding adds what was counted so far to the families and points the slots at their series.
 */
export class CacheRecorder {
  /** The `cache` label value. */
  readonly name: string
  /** Whether the recorder follows the process's primary plugin (standalone wrappers). */
  readonly standalone: boolean
  private slots: Slots = localSlots()
  private metrics: MetricSet | undefined
  private pendingErrors = 0

  constructor (name: string, standalone: boolean) {
    this.name = name
    this.standalone = standalone
  }

  /** The `MetricSet` counted into, if bound. */
  get boundTo (): MetricSet | undefined { return this.metrics }

  /** Points the counters at `metrics`' families, adding what was counted while unbound. */
  bind (metrics: MetricSet): void {
    if (this.metrics === metrics) return
    const old = this.metrics === undefined ? this.slots : undefined
    const n = this.name
    const slots: Slots = {
      get: metrics.get('cacheGet').child(n),
      hits: metrics.get('cacheHits').child(n),
      misses: metrics.get('cacheMisses').child(n),
      fails: metrics.get('cacheFails').child(n),
      sets: metrics.get('cacheSets').child(n),
      invalidations: metrics.get('cacheInvalidations').child(n)
    }
    if (old !== undefined) {
      for (const k of Object.keys(slots) as Array<keyof Slots>) slots[k].value += old[k].value
      for (; this.pendingErrors > 0; this.pendingErrors--) metrics.countError('cache')
    }
    this.slots = slots
    this.metrics = metrics
  }

  /** Goes back to local counting (the bound app closed). */
  unbind (): void {
    this.slots = localSlots()
    this.metrics = undefined
  }

  /** Counts the outcome of one read. */
  read (value: unknown): void {
    const s = this.slots
    s.get.value++
    if (value === undefined || value === null) s.misses.value++
    else s.hits.value++
  }

  /** Counts one failed read. */
  fail (): void {
    this.slots.get.value++
    this.slots.fails.value++
  }

  /** Counts `n` writes. */
  set (n = 1): void { this.slots.sets.value += n }

  /** Counts `n` invalidations. */
  invalidate (n = 1): void { this.slots.invalidations.value += n }

  /** Counts an exception caught inside the wrapper (never reaches the app). */
  error (): void {
    try {
      if (this.metrics === undefined) this.pendingErrors++
      else this.metrics.countError('cache')
    } catch {
      // Nothing left to report to.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Late binding of standalone wrappers

const standaloneRecorders = new Set<CacheRecorder>()
let primary: MetricSet | undefined

function adoptStandalone (recorder: CacheRecorder): void {
  standaloneRecorders.add(recorder)
  if (primary !== undefined) recorder.bind(primary)
}

/**
 * Called by the plugin when an enabled instance registers: if there is no primary plugin yet,
 * this one becomes it and every standalone cache (wrapped before, or later) counts into it.
 * Returns whether it became the primary.
 */
export function bindStandaloneCaches (metrics: MetricSet): boolean {
  if (primary !== undefined) return primary === metrics
  primary = metrics
  for (const r of standaloneRecorders) r.bind(metrics)
  return true
}

/** Called by the plugin when its app closes: standalone caches count locally until the next. */
export function releaseStandaloneCaches (metrics: MetricSet): void {
  if (primary !== metrics) return
  primary = undefined
  for (const r of standaloneRecorders) {
    if (r.boundTo === metrics) r.unbind()
  }
}

const recorders = new WeakMap<object, CacheRecorder>()

/**
 * Binds a wrapper made by `instrumentCache()` or an `InstrumentedCacheAdapter` to `metrics`
 * directly (for example the ORM integration binding the ORM's result cache to its app), taking it
 * out of the late-binding set. Returns false when `cache` is not one of ours.
 */
export function bindCache (cache: unknown, metrics: MetricSet): boolean {
  if (cache === null || (typeof cache !== 'object' && typeof cache !== 'function')) return false
  const r = recorders.get(cache)
  if (r === undefined) return false
  standaloneRecorders.delete(r)
  r.bind(metrics)
  return true
}

// ---------------------------------------------------------------------------------------------
// Wrapping

type AnyFn = (...args: any[]) => any
type Kind = 'read' | 'readMany' | 'readInvalidate' | 'write' | 'writeMany' | 'invalidate' | 'invalidateKeys' | 'clear'
type Shape = 'map' | 'redis' | 'object'

const MAP_METHODS: ReadonlyMap<string, Kind> = new Map([['get', 'read'], ['set', 'write'], ['delete', 'invalidate'], ['clear', 'clear']])
const OBJECT_METHODS: ReadonlyMap<string, Kind> = new Map([
  ['get', 'read'], ['set', 'write'], ['delete', 'invalidate'], ['del', 'invalidate'], ['remove', 'invalidate'], ['clear', 'clear'], ['reset', 'clear']
])
/** Redis commands by lower-case method name. */
const REDIS_METHODS: ReadonlyMap<string, Kind> = new Map([
  ['get', 'read'], ['getex', 'read'], ['getdel', 'readInvalidate'], ['mget', 'readMany'],
  ['set', 'write'], ['setex', 'write'], ['psetex', 'write'], ['setnx', 'write'], ['getset', 'write'],
  ['mset', 'writeMany'], ['msetnx', 'writeMany'],
  ['del', 'invalidateKeys'], ['unlink', 'invalidateKeys'], ['flushdb', 'clear'], ['flushall', 'clear']
])

function shapeOf (cache: unknown): Shape | undefined {
  if (cache instanceof Map) return 'map'
  if (cache === null || (typeof cache !== 'object' && typeof cache !== 'function')) return undefined
  const c = cache as Record<string, unknown>
  if (typeof c.get !== 'function' || typeof c.set !== 'function') return undefined
  if (typeof c.del === 'function' && (typeof c.sendCommand === 'function' || typeof c.call === 'function')) return 'redis'
  return 'object'
}

function isThenable (v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'
}

/** Number of keys named by the arguments of `del`/`unlink` (variadic or one array). */
function keyCount (args: unknown[]): number {
  let n = 0
  for (const a of args) {
    if (Array.isArray(a)) n += a.length
    else if (typeof a !== 'function') n++ // ioredis accepts a trailing callback
  }
  return n
}

/** Number of keys written by `mSet`: an object, a Map, [[k, v], ...], [k, v, ...] or k, v, ... */
function pairCount (args: unknown[]): number {
  const a = args.filter((x) => typeof x !== 'function')
  if (a.length === 1) {
    const x = a[0]
    if (x instanceof Map) return x.size
    if (Array.isArray(x)) return Array.isArray(x[0]) ? x.length : Math.floor(x.length / 2)
    if (x !== null && typeof x === 'object') return Object.keys(x).length
    return 1
  }
  return Math.max(1, Math.floor(a.length / 2))
}

/** Counts the outcome of a call, without touching its value or error. */
function observe (kind: Kind, recorder: CacheRecorder, fn: AnyFn, self: unknown, args: unknown[]): unknown {
  let result: unknown
  try {
    result = fn.apply(self, args)
  } catch (err) {
    if (kind === 'read' || kind === 'readInvalidate' || kind === 'readMany') {
      try { recorder.fail() } catch { recorder.error() }
    }
    throw err
  }
  const isRead = kind === 'read' || kind === 'readInvalidate' || kind === 'readMany'
  try {
    if (!isRead) {
      if (kind === 'write') recorder.set()
      else if (kind === 'writeMany') recorder.set(pairCount(args))
      else if (kind === 'invalidate' || kind === 'clear') recorder.invalidate()
      else recorder.invalidate(keyCount(args))
      return result
    }
    if (kind === 'readInvalidate') recorder.invalidate()
  } catch {
    recorder.error()
    return result
  }
  const done = (value: unknown): void => {
    try {
      if (kind === 'readMany' && Array.isArray(value)) {
        for (const v of value) recorder.read(v)
      } else {
        recorder.read(value)
      }
    } catch {
      recorder.error()
    }
  }
  if (!isThenable(result)) {
    done(result)
    return result
  }
  return result.then((value) => { done(value); return value }, (err: unknown) => {
    try { recorder.fail() } catch { recorder.error() }
    throw err
  })
}

function resolveOptions (opts: unknown): InstrumentCacheOptions {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new FNM_ERR_OPTION_INVALID('instrumentCache options', 'expected an object { name }')
  for (const key of Object.keys(opts)) {
    if (key !== 'name') throw new FNM_ERR_OPTION_UNKNOWN(`instrumentCache.${key}`)
  }
  const name = (opts as { name?: unknown }).name
  if (typeof name !== 'string' || name === '') throw new FNM_ERR_OPTION_INVALID('instrumentCache.name', `expected a non-empty string, got ${typeof name === 'string' ? 'an empty string' : typeof name}`)
  return { name }
}

/** Own methods a Proxy must hand out unchanged (non-configurable and read-only: a Proxy invariant). */
function lockedMethods (cache: object): Map<PropertyKey, AnyFn> {
  const out = new Map<PropertyKey, AnyFn>()
  for (const key of Reflect.ownKeys(cache)) {
    const d = Reflect.getOwnPropertyDescriptor(cache, key)
    if (d !== undefined && d.configurable === false && d.writable === false && typeof d.value === 'function') out.set(key, d.value as AnyFn)
  }
  return out
}

function methodKind (table: ReadonlyMap<string, Kind>, shape: Shape, prop: PropertyKey): Kind | undefined {
  return typeof prop === 'string' ? table.get(shape === 'redis' ? prop.toLowerCase() : prop) : undefined
}

/** Calls `fn` counted as `kind`, with the real cache as `this`; the cache itself comes back as the wrapper. */
function instrumentedMethod (kind: Kind, recorder: CacheRecorder, fn: AnyFn, target: object, wrapper: () => object): AnyFn {
  return function instrumented (this: unknown, ...args: unknown[]) {
    const w = wrapper()
    const r = observe(kind, recorder, fn, this === w || this === undefined ? target : this, args)
    return r === target ? w : r
  }
}

/**
 * A frozen cache whose counted methods are its own properties: a Proxy may not hand out anything
 * but the frozen functions themselves, so the wrapper is a frozen twin instead. Same prototype,
 * the same own properties with the same attributes (a frozen object's state cannot change, so
 * the twin cannot drift from it), the counted methods replaced by counting ones that call the
 * originals on the real cache.
 */
function frozenTwin<C extends object> (cache: C, table: ReadonlyMap<string, Kind>, shape: Shape, recorder: CacheRecorder): C {
  const descriptors = Object.getOwnPropertyDescriptors(cache) as Record<PropertyKey, PropertyDescriptor>
  let twin: C | undefined
  for (const key of Reflect.ownKeys(descriptors)) {
    const d = descriptors[key as string]
    const kind = methodKind(table, shape, key)
    if (kind !== undefined && typeof d.value === 'function') d.value = instrumentedMethod(kind, recorder, d.value as AnyFn, cache, () => twin as C)
  }
  twin = Object.freeze(Object.create(Object.getPrototypeOf(cache), descriptors) as C)
  return twin
}

function wrap<C extends object> (cache: C, recorder: CacheRecorder): C {
  const shape = shapeOf(cache)
  if (shape === undefined) throw new FNM_ERR_OPTION_INVALID('instrumentCache(cache)', 'expected a Map, a Redis client, or an object with get and set methods')
  const table = shape === 'map' ? MAP_METHODS : shape === 'redis' ? REDIS_METHODS : OBJECT_METHODS
  const locked = lockedMethods(cache)
  for (const key of locked.keys()) {
    if (methodKind(table, shape, key) === undefined) continue
    if (Object.isFrozen(cache)) {
      const twin = frozenTwin(cache, table, shape, recorder)
      recorders.set(twin, recorder)
      return twin
    }
    throw new FNM_ERR_CACHE_UNWRAPPABLE(String(key))
  }
  const wrapped = new Map<PropertyKey, { original: AnyFn, fn: AnyFn }>()
  const proxy: C = new Proxy(cache, {
    get (target, prop) {
      const value = Reflect.get(target, prop, target) as unknown
      if (typeof value !== 'function') return value
      const fn = value as AnyFn
      // A read-only, non-configurable own method (not one that is counted): the invariant wants it as it is.
      if (locked.get(prop) === fn) return fn
      const known = wrapped.get(prop)
      if (known !== undefined && known.original === fn) return known.fn
      const kind = methodKind(table, shape, prop)
      const out: AnyFn = kind === undefined
        ? function passThrough (this: unknown, ...args: unknown[]) {
          const r: unknown = fn.apply(this === proxy || this === undefined ? target : this, args)
          if (r === target) return proxy
          // node-redis's connect() resolves to the client itself: give back the wrapper there too.
          if (shape === 'redis' && r instanceof Promise) return r.then((v: unknown) => v === target ? proxy : v)
          return r
        }
        : instrumentedMethod(kind, recorder, fn, target, () => proxy)
      wrapped.set(prop, { original: fn, fn: out })
      return out
    },
    set (target, prop, value) {
      return Reflect.set(target, prop, value, target)
    }
  })
  recorders.set(proxy, recorder)
  return proxy
}

/**
 * Wraps an application cache so its reads, hits, misses, failed reads, writes and invalidations
 * are counted under `name`. The wrapper has the cache's interface and TypeScript type, and
 * behaves exactly like it. Standalone wrappers count into the primary plugin's registry once one
 * is registered (see the file comment); `app.metrics.instrumentCache()` binds to that app.
 * @throws FNM_ERR_OPTION_INVALID when `cache` has no supported shape or `name` is not a non-empty string
 * @throws FNM_ERR_OPTION_UNKNOWN for an unknown option
 * @throws FNM_ERR_CACHE_UNWRAPPABLE when a counted method is a read-only, non-configurable own property of a cache that is not frozen
 */
export function instrumentCache<C extends object> (cache: C, opts: InstrumentCacheOptions): C {
  const { name } = resolveOptions(opts)
  const recorder = new CacheRecorder(name, true)
  const proxy = wrap(cache, recorder)
  adoptStandalone(recorder)
  return proxy
}

/** `app.metrics.instrumentCache()`: bound to `metrics`, or the cache itself when `metrics` is undefined (plugin disabled). */
export function instrumentCacheFor<C extends object> (metrics: MetricSet | undefined, cache: C, opts: InstrumentCacheOptions): C {
  const { name } = resolveOptions(opts)
  if (metrics === undefined) {
    if (shapeOf(cache) === undefined) throw new FNM_ERR_OPTION_INVALID('instrumentCache(cache)', 'expected a Map, a Redis client, or an object with get and set methods')
    return cache
  }
  const recorder = new CacheRecorder(name, false)
  const proxy = wrap(cache, recorder)
  recorder.bind(metrics)
  return proxy
}

// ---------------------------------------------------------------------------------------------
// MikroORM result cache

/** MikroORM's `CacheAdapter` interface (identical in MikroORM 6 and 7). */
export interface CacheAdapterLike {
  get: (name: string, origin?: string) => unknown
  set: (name: string, data: unknown, origin: string, expiration?: number) => void | Promise<void>
  remove: (name: string) => void | Promise<void>
  clear: () => void | Promise<void>
  close?: () => void | Promise<void>
}

/** A MikroORM cache adapter class: constructed with `{ expiration, ...options }`. */
export type CacheAdapterClass = new (options: any) => CacheAdapterLike

/** Options of `InstrumentedCacheAdapter`, given as `resultCache.options` in the ORM config. */
export interface InstrumentedCacheAdapterOptions {
  /** The adapter to wrap. @default MikroORM's `MemoryCacheAdapter`, from the app's `@mikro-orm/core` */
  adapter?: CacheAdapterClass
  /** The `cache` label value. @default 'orm-result' */
  name?: string
  /** Options of the wrapped adapter (MikroORM's `expiration` is passed to it as well). */
  options?: Record<string, unknown>
  /** Set by MikroORM from `resultCache.expiration`. */
  expiration?: number
}

/** Default `cache` label of the MikroORM result cache. */
export const DEFAULT_RESULT_CACHE_NAME = 'orm-result'

/** MikroORM's MemoryCacheAdapter, loaded at run time from the app's `@mikro-orm/core`. */
function defaultAdapterClass (): CacheAdapterClass {
  let core: { MemoryCacheAdapter?: CacheAdapterClass } | undefined
  try {
    core = createRequire(join(process.cwd(), 'noop.js'))('@mikro-orm/core')
  } catch {
    core = require('@mikro-orm/core') as typeof core
  }
  if (typeof core?.MemoryCacheAdapter !== 'function') throw new FNM_ERR_OPTION_INVALID('resultCache.options.adapter', 'no adapter given and @mikro-orm/core has no MemoryCacheAdapter')
  return core.MemoryCacheAdapter
}

/**
 * A MikroORM result-cache adapter that wraps another one and counts its reads, hits, misses,
 * failed reads, writes and invalidations. One line of the ORM config:
 * `resultCache: { adapter: InstrumentedCacheAdapter, options: { adapter: MemoryCacheAdapter, name: 'orm-result' } }`.
 * Counts reach the plugin's registry by late binding (see the file comment).
 */
export class InstrumentedCacheAdapter implements CacheAdapterLike {
  /** The wrapped adapter. */
  readonly adapter: CacheAdapterLike
  private readonly recorder: CacheRecorder

  constructor (options: InstrumentedCacheAdapterOptions = {}) {
    const { adapter, name, options: inner, expiration } = options ?? {}
    if (name !== undefined && (typeof name !== 'string' || name === '')) throw new FNM_ERR_OPTION_INVALID('resultCache.options.name', 'expected a non-empty string')
    if (adapter !== undefined && typeof adapter !== 'function') throw new FNM_ERR_OPTION_INVALID('resultCache.options.adapter', 'expected a cache adapter class')
    const Adapter = adapter ?? defaultAdapterClass()
    this.adapter = new Adapter({ ...(expiration === undefined ? {} : { expiration }), ...inner })
    this.recorder = new CacheRecorder(name ?? DEFAULT_RESULT_CACHE_NAME, true)
    recorders.set(this, this.recorder)
    adoptStandalone(this.recorder)
  }

  /** A read: counted as a hit, a miss (undefined or null) or a failure. */
  get<T = any> (name: string, origin?: string): T | Promise<T | undefined> | undefined {
    const a = this.adapter
    return observe('read', this.recorder, a.get, a, origin === undefined ? [name] : [name, origin]) as T | undefined
  }

  /** A write. */
  set (name: string, data: unknown, origin: string, expiration?: number): void | Promise<void> {
    const a = this.adapter
    return observe('write', this.recorder, a.set, a, [name, data, origin, expiration]) as void | Promise<void>
  }

  /** One invalidation. */
  remove (name: string): void | Promise<void> {
    const a = this.adapter
    return observe('invalidate', this.recorder, a.remove, a, [name]) as void | Promise<void>
  }

  /** One invalidation. */
  clear (): void | Promise<void> {
    const a = this.adapter
    return observe('clear', this.recorder, a.clear, a, []) as void | Promise<void>
  }

  /** Closes the wrapped adapter, if it can be closed. */
  close (): void | Promise<void> {
    if (typeof this.adapter.close === 'function') return this.adapter.close()
  }
}
