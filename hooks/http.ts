/**
 * Where the HTTP families are observed.
 *
 * Design (why it is cheap): every hook Fastify runs per request costs about 1% of a trivial
 * route's throughput, even empty, so the request path has exactly one hook of ours that runs for
 * every request (`onRequest`). The end of the response needs no hook and no listener per
 * response: Node's HTTP/1 server reports each finished response on its
 * `http.server.response.finish` diagnostics channel, and one 'close' listener per socket sees the
 * responses whose client went away first (see watchEnd). That replaces both `onResponse` and
 * `onRequestAbort`. `onError` runs only on the error path. Phase timing adds no hook at all:
 * the application's own lifecycle hooks and route handlers are wrapped once, when they are
 * registered, and a route with no hooks pays only for its handler wrapper. Every series a
 * request touches is resolved once per route (and per status code) and kept, so a request does
 * no label hashing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import * as diagnostics from 'node:diagnostics_channel'
import { ServerResponse } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { monotonicMs } from '../lib/clock'
import { FNM_ERR_ROUTE_CONFIG_INVALID } from '../lib/errors'
import type { CounterSeries, GaugeSeries, HistogramSeries } from '../lib/families'
import type { MetricSet } from '../lib/metrics'
import { kRequestState, kResponseState, kWrapped } from '../lib/symbols'

/** The `route` label of a request that matched no route (Fastify's not-found handler). */
export const UNMATCHED_ROUTE = '__unmatched__'
/** The `method` label of a method the Fastify instance does not support. */
export const OTHER_METHOD = 'other'
/** The `phase` label values, in lifecycle order. */
export const PHASES = Object.freeze(['onRequest', 'preParsing', 'preValidation', 'preHandler', 'handler', 'preSerialization', 'onSend'] as const)
/** A `phase` label value. */
export type Phase = typeof PHASES[number]

const HANDLER_PHASE = PHASES.indexOf('handler')
const HOOK_PHASES: ReadonlyMap<string, number> = new Map(PHASES.filter((p) => p !== 'handler').map((p) => [p, PHASES.indexOf(p)]))

type AnyFn = (...args: any[]) => any

/** How the HTTP hooks decide what to observe; resolved from the plugin's options. */
export interface HttpHooksConfig {
  readonly metrics: MetricSet
  readonly exclude: ReadonlyArray<string | RegExp>
  /** Reports an exception caught inside a hook (counted, logged once). */
  readonly onInternalError: (component: string, err: unknown) => void
}

/** Series of one status code of one route and method. */
class StatusSeries {
  constructor (readonly status: number, readonly requests: CounterSeries, readonly duration: HistogramSeries) {}
}

/** Series of one route and method, resolved on the route's first request with that method. */
class RouteMethodSeries {
  readonly byStatus = new Map<number, StatusSeries>()
  /** The status series used last: most requests of a route repeat its status, and comparing one
   * number is cheaper than the Map lookup (about 80 instructions, bench/instructions.js). */
  lastStatus: StatusSeries | null = null
  readonly exceptions = new Map<string, CounterSeries>()
  constructor (
    readonly method: string,
    readonly perMethod: MethodSeries,
    readonly requestSize: HistogramSeries,
    readonly responseSize: HistogramSeries,
    readonly aborted: CounterSeries
  ) {}
}

/** Per-method series that do not depend on the route. */
class MethodSeries {
  constructor (readonly name: string, readonly received: CounterSeries, readonly inFlight: GaugeSeries) {}
}

/** Everything known about one route (one Fastify route context). */
class RouteRecord {
  readonly byMethod: Array<RouteMethodSeries | undefined> = []
  /** The request method seen last (Node hands out the same string for each method) and its
   * series: a string identity check instead of a Map lookup per request. */
  lastMethod: string | undefined = undefined
  lastByMethod: RouteMethodSeries | null = null
  readonly phases: Array<HistogramSeries | undefined> = []
  constructor (readonly route: string, readonly excluded: boolean) {}
}

/** What one request carries from `onRequest` to the end of its response. A fixed shape, one allocation. */
class RequestState {
  start: number
  route: RouteRecord
  routeMethod: RouteMethodSeries
  requestBytes = 0
  responseBytes = 0
  /** Bit i set: phase i was timed for this request. */
  phaseMask = 0
  phaseTimes: Float64Array | null = null
  /** Sum of every wrapped hook's time, to take nested hook time out of a synchronous handler. */
  hookTime = 0
  done = false
  /** The responses queued behind another on the same connection, while this one is (watchEnd). */
  queue: Set<RequestState> | null = null
  readonly reply: FastifyReply
  /** The response's own write(), called by the counting write. */
  readonly write: ServerResponse['write']
  /** Settles the request once its response closes (set by installHttpHooks). */
  readonly finish: (state: RequestState) => void

  constructor (start: number, route: RouteRecord, routeMethod: RouteMethodSeries, reply: FastifyReply, finish: (state: RequestState) => void) {
    this.start = start
    this.route = route
    this.routeMethod = routeMethod
    this.reply = reply
    this.write = reply.raw.write
    this.finish = finish
  }

  addPhase (phase: number, ms: number): void {
    if (this.phaseTimes === null) this.phaseTimes = new Float64Array(PHASES.length)
    this.phaseTimes[phase] += ms
    this.phaseMask |= 1 << phase
  }
}

type StatefulRequest = FastifyRequest & { [kRequestState]: RequestState | null }
type StatefulResponse = ServerResponse & { [kResponseState]: RequestState }

/**
 * The response's 'close' listener, shared by every request (no closure per request): the
 * response ended, or the connection closed first. Used where Node's HTTP/1 server is not the
 * transport (Fastify's inject(), HTTP/2); see RESPONSE_FINISH.
 */
function onResponseClose (this: StatefulResponse): void {
  const state = this[kResponseState]
  state.finish(state)
}

/**
 * How a response of Node's HTTP/1 server is settled without a listener per response. Adding a
 * 'close' listener cost about 650 instructions per request (Node keeps listeners in a
 * dictionary), and emitting it a generic call: a quarter of this package's per-request
 * instructions (bench/instructions.js; the CPU time it saved was within the benchmarks' error,
 * see docs/performance.md). Instead:
 * - a completed response is settled from Node's `http.server.response.finish` diagnostics channel,
 *   which Node's server publishes for every response it finishes once anyone subscribes;
 * - a response whose connection closes first is settled by one 'close' listener per socket, added
 *   on the socket's first request. It settles the response the socket was serving and those
 *   queued behind it by a pipelining client, for which Node itself emits nothing at all.
 */
const RESPONSE_FINISH = 'http.server.response.finish'
/** Sockets that carry the 'close' listener. */
const watchedSockets = new WeakSet<Socket>()
/** Per socket, the responses queued behind the one it is serving. */
const queues = new WeakMap<Socket, Set<RequestState>>()
/** Installations currently subscribed to RESPONSE_FINISH (one shared subscriber). */
let finishSubscribers = 0

function onResponseFinish (message: unknown): void {
  const res = (message as { response?: Partial<StatefulResponse> } | null)?.response
  const state = res?.[kResponseState]
  if (state !== undefined) state.finish(state)
}

function onSocketClose (this: Socket & { _httpMessage?: Partial<StatefulResponse> | null }): void {
  const state = this._httpMessage?.[kResponseState]
  if (state !== undefined) state.finish(state)
  const queue = queues.get(this)
  if (queue !== undefined) {
    queues.delete(this)
    for (const queued of queue) queued.finish(queued)
  }
}

/**
 * Makes sure the end of this response will be seen: through the finish channel and the socket's
 * listener when Node's HTTP/1 server serves it, else through a 'close' listener on the response.
 * Kept small for the compiler to inline; the rare cases are in functions of their own.
 */
function watchEnd (req: IncomingMessage, res: StatefulResponse, state: RequestState): void {
  const socket = req.socket
  if (!watchedSockets.has(socket) && !watchSocket(socket, res)) {
    // 'close' fires once per response; on() avoids once()'s wrapper allocation.
    res.on('close', onResponseClose)
  } else if (res.socket !== socket || socket.destroyed) {
    watchQueued(socket, state)
  }
}

/** On a socket's first request: adds its 'close' listener, or says that the socket is not Node's HTTP/1 server's. */
function watchSocket (socket: Socket, res: ServerResponse): boolean {
  if (finishSubscribers === 0 || !(socket instanceof Socket) || !(res instanceof ServerResponse)) return false
  watchedSockets.add(socket)
  socket.on('close', onSocketClose)
  return true
}

/**
 * A response not being served by its socket: queued behind another response on the connection
 * (HTTP pipelining), or the connection is already gone (it closed while an earlier hook waited).
 */
function watchQueued (socket: Socket, state: RequestState): void {
  if (socket.destroyed) {
    state.finish(state)
    return
  }
  let queue = queues.get(socket)
  if (queue === undefined) {
    queue = new Set()
    queues.set(socket, queue)
  }
  queue.add(state)
  state.queue = queue
}

/**
 * Counts streamed response bytes. Streams (Node and web) reach the socket through res.write;
 * Fastify ends other payloads with res.end(payload) and a Content-Length, so this runs only for
 * streamed bodies. Shared by every request; the state is on the response.
 */
function countingWrite (this: StatefulResponse, chunk: any, ...rest: any[]): boolean {
  const state = this[kResponseState]
  if (chunk != null && !state.done) state.responseBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof rest[0] === 'string' ? rest[0] as BufferEncoding : 'utf8') : chunk.length
  return (state.write as AnyFn).apply(this, [chunk, ...rest])
}

/**
 * One of Fastify's own symbol-keyed fields, found by its description on the first object that has
 * it, or null when this Fastify has no such field (callers then use the public API). Reading two
 * of them saves work on every request; see routeConfigOf and contentLengthOf.
 */
function fastifySymbol (target: object, description: string): symbol | null {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === description) ?? null
}

let kRouteContext: symbol | null | undefined
/**
 * The matched route's config. Fastify's public `request.routeOptions` builds a new object on
 * every read; the route context it reads from sits on the request under Fastify's
 * `fastify.context` symbol.
 */
function routeConfigOf (request: FastifyRequest): unknown {
  if (kRouteContext === undefined) kRouteContext = fastifySymbol(request, 'fastify.context')
  if (kRouteContext !== null) {
    const context = (request as unknown as Record<symbol, { config?: unknown } | undefined>)[kRouteContext]
    if (context !== undefined) return context.config
  }
  return request.routeOptions.config
}

let kReplyHeaders: symbol | null | undefined
/**
 * The response's Content-Length header as Fastify sent it. Fastify hands its headers to
 * res.writeHead(), where res.getHeader() cannot see them; `reply.getHeader()` reads Fastify's own
 * copy, but lower-cases its argument on every call (about 200 instructions, more than the rest of
 * the read), so the copy is read directly under Fastify's `fastify.reply.headers` symbol.
 */
function contentLengthOf (reply: FastifyReply): unknown {
  if (kReplyHeaders === undefined) kReplyHeaders = fastifySymbol(reply, 'fastify.reply.headers')
  if (kReplyHeaders !== null) {
    const headers = (reply as unknown as Record<symbol, Record<string, unknown> | undefined>)[kReplyHeaders]
    const value = headers?.['content-length']
    if (value !== undefined) return value
  }
  return reply.getHeader('content-length')
}

/** The `type` label of an exception: its Fastify/Node error code, else its class name. */
export function exceptionType (err: unknown): string {
  if (err === null || typeof err !== 'object') return 'NonError'
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && /^(FST_|ERR_|E[A-Z0-9]+$)/.test(code)) return code
  const name = (err as { constructor?: { name?: unknown } }).constructor?.name
  return typeof name === 'string' && name !== '' ? name : 'Error'
}

/**
 * Installs the HTTP instrumentation on a Fastify instance (the one the plugin was registered on;
 * through `fastify-plugin` its hooks are global).
 */
export function installHttpHooks (fastify: FastifyInstance, config: HttpHooksConfig): void {
  const { metrics, exclude, onInternalError } = config
  const received = metrics.get('httpReceived')
  const requests = metrics.get('httpRequests')
  const duration = metrics.get('httpDuration')
  const phaseDuration = metrics.get('httpPhase')
  const requestSize = metrics.get('httpRequestSize')
  const responseSize = metrics.get('httpResponseSize')
  const inFlight = metrics.get('httpInFlight')
  const aborted = metrics.get('httpAborted')
  const exceptions = metrics.get('httpExceptions')

  // Methods: the instance's supported methods get their own label value, anything else is `other`.
  // Resolved on the first request, when every addHttpMethod() call has been made.
  let methodIndex: Map<string, number> | null = null
  let methodNames: string[] = []
  const methodSeries: Array<MethodSeries | undefined> = []
  function indexOfMethod (method: string | undefined): number {
    if (methodIndex === null) {
      const supported = (fastify as unknown as { supportedMethods?: string[] }).supportedMethods ?? ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
      methodNames = [...supported, OTHER_METHOD]
      methodIndex = new Map(supported.map((m, i) => [m, i]))
    }
    const i = method === undefined ? undefined : methodIndex.get(method)
    return i === undefined ? methodNames.length - 1 : i
  }
  function seriesOfMethod (i: number): MethodSeries {
    let m = methodSeries[i]
    if (m === undefined) {
      const name = methodNames[i]
      m = new MethodSeries(name, received.child(name), inFlight.child(name))
      methodSeries[i] = m
    }
    return m
  }

  // Routes: one record per route context, keyed by its config object (stable for the route's life).
  const records = new WeakMap<object, RouteRecord>()
  const unmatched = new RouteRecord(UNMATCHED_ROUTE, isExcluded(UNMATCHED_ROUTE))
  function isExcluded (route: string): boolean {
    for (const e of exclude) {
      if (typeof e === 'string' ? e === route : e.test(route)) return true
    }
    return false
  }
  function recordOf (request: FastifyRequest): RouteRecord {
    const routeConfig = routeConfigOf(request) as (Record<string, unknown> & { url?: string }) | undefined
    if (routeConfig === undefined || routeConfig === null) return unmatched
    let record = records.get(routeConfig)
    if (record === undefined) {
      const url = routeConfig.url
      if (url === undefined) {
        record = unmatched
      } else {
        record = new RouteRecord(url, routeConfig.metrics === false || isExcluded(url))
      }
      records.set(routeConfig, record)
    }
    return record
  }
  function seriesOfRouteMethod (record: RouteRecord, i: number): RouteMethodSeries {
    let rm = record.byMethod[i]
    if (rm === undefined) {
      const method = methodNames[i]
      rm = new RouteMethodSeries(method, seriesOfMethod(i), requestSize.child(method, record.route), responseSize.child(method, record.route), aborted.child(method, record.route))
      record.byMethod[i] = rm
    }
    return rm
  }

  function finish (state: RequestState): void {
    const reply = state.reply
    const res = reply.raw
    if (state.done) return
    state.done = true
    // Still queued behind another response when its connection closed: never sent, whatever the
    // handler did.
    let neverSent = false
    if (state.queue !== null) {
      neverSent = res.socket === null
      state.queue.delete(state)
    }
    const rm = state.routeMethod
    rm.perMethod.inFlight.value--
    // end() not called when the connection closed: the client went away before the response.
    if (!res.writableEnded || neverSent) {
      rm.aborted.value++
      return
    }
    const status = res.statusCode
    let ss = rm.lastStatus
    if (ss === null || ss.status !== status) {
      ss = rm.byStatus.get(status) ?? newStatusSeries(rm, state.route, status)
      rm.lastStatus = ss
    }
    ss.requests.value++
    ss.duration.observe((monotonicMs() - state.start) / 1000)
    rm.requestSize.observe(state.requestBytes)
    rm.responseSize.observe(responseBodyBytes(state, reply, status))
    if (state.phaseMask !== 0) observePhases(state)
  }

  function newStatusSeries (rm: RouteMethodSeries, record: RouteRecord, status: number): StatusSeries {
    const code = String(status)
    const ss = new StatusSeries(status, requests.child(rm.method, record.route, code), duration.child(rm.method, record.route, code))
    rm.byStatus.set(status, ss)
    return ss
  }

  function observePhases (state: RequestState): void {
    const record = state.route
    const times = state.phaseTimes as Float64Array
    for (let p = 0; p < PHASES.length; p++) {
      if ((state.phaseMask & (1 << p)) === 0) continue
      let h = record.phases[p]
      if (h === undefined) {
        h = phaseDuration.child(record.route, PHASES[p])
        record.phases[p] = h
      }
      h.observe(times[p] / 1000)
    }
  }

  function responseBodyBytes (state: RequestState, reply: FastifyReply, status: number): number {
    // HEAD, 204 and 304 responses carry no body whatever their headers say.
    if (state.routeMethod.method === 'HEAD' || status === 204 || status === 304) return 0
    const cl = contentLengthOf(reply)
    if (cl !== undefined) {
      const n = Number(cl)
      if (Number.isFinite(n) && n >= 0) return n
    }
    return state.responseBytes
  }

  function settle (state: RequestState): void {
    try {
      finish(state)
    } catch (err) {
      onInternalError('http', err)
    }
  }

  function startRequest (request: StatefulRequest, reply: FastifyReply, record: RouteRecord): void {
    const req: IncomingMessage = request.raw
    const method = req.method
    let rm = record.lastByMethod
    if (rm === null || record.lastMethod !== method) {
      rm = seriesOfRouteMethod(record, indexOfMethod(method))
      record.lastMethod = method
      record.lastByMethod = rm
    }
    const m = rm.perMethod
    const state = new RequestState(monotonicMs(), record, rm, reply, settle)
    m.received.value++
    m.inFlight.value++
    request[kRequestState] = state

    const cl = req.headers['content-length']
    if (cl !== undefined) {
      const n = Number(cl)
      if (Number.isFinite(n) && n >= 0) state.requestBytes = n
    } else if (req.headers['transfer-encoding'] !== undefined) {
      // Chunked upload: count what is read. prependListener does not switch the stream to
      // flowing mode (Readable#on('data') would), so whoever reads the body still controls it.
      req.prependListener('data', (chunk: Buffer | string) => { state.requestBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length })
    }

    const res = reply.raw as StatefulResponse
    res[kResponseState] = state
    res.write = countingWrite as ServerResponse['write']
    watchEnd(req, res, state)
  }

  fastify.decorateRequest(kRequestState as unknown as string, null)

  if (finishSubscribers++ === 0) diagnostics.subscribe(RESPONSE_FINISH, onResponseFinish)
  fastify.addHook('onClose', function netboxMetricsUnsubscribe (_instance, done) {
    if (--finishSubscribers === 0) diagnostics.unsubscribe(RESPONSE_FINISH, onResponseFinish)
    done()
  })

  fastify.addHook('onRequest', function netboxMetricsOnRequest (request, reply, done) {
    try {
      const record = recordOf(request)
      if (!record.excluded) startRequest(request as StatefulRequest, reply, record)
    } catch (err) {
      onInternalError('http', err)
    }
    done()
  })

  fastify.addHook('onError', function netboxMetricsOnError (request, _reply, error, done) {
    try {
      const state = (request as StatefulRequest)[kRequestState]
      if (state !== null && state !== undefined) {
        const type = exceptionType(error)
        const rm = state.routeMethod
        let c = rm.exceptions.get(type)
        if (c === undefined) {
          c = exceptions.child(rm.method, state.route.route, type)
          rm.exceptions.set(type, c)
        }
        c.value++
      }
    } catch (err) {
      onInternalError('http', err)
    }
    done()
  })

  // Phase timing: wrap handlers and route-level hooks of routes registered from now on, and the
  // lifecycle hooks that any plugin adds from now on (child instances inherit this addHook).
  fastify.addHook('onRoute', function netboxMetricsOnRoute (routeOptions: RouteOptions) {
    const metricsConfig = (routeOptions.config as { metrics?: unknown } | undefined)?.metrics
    if (metricsConfig !== undefined && typeof metricsConfig !== 'boolean') {
      throw new FNM_ERR_ROUTE_CONFIG_INVALID(String(routeOptions.method), routeOptions.url, JSON.stringify(metricsConfig))
    }
    if (metricsConfig === false) return
    routeOptions.handler = wrapHandler(routeOptions.handler as AnyFn, onInternalError) as RouteOptions['handler']
    for (const [name, phase] of HOOK_PHASES) {
      const hooks = (routeOptions as unknown as Record<string, AnyFn | AnyFn[] | undefined>)[name]
      if (hooks === undefined || hooks === null) continue
      ;(routeOptions as unknown as Record<string, unknown>)[name] = Array.isArray(hooks)
        ? hooks.map((fn) => wrapHook(fn, phase))
        : wrapHook(hooks, phase)
    }
  })

  const originalAddHook = fastify.addHook
  const wrappingAddHook = function addHook (this: FastifyInstance, name: string, fn: AnyFn): FastifyInstance {
    const phase = HOOK_PHASES.get(name)
    return (originalAddHook as AnyFn).call(this, name, phase === undefined || typeof fn !== 'function' ? fn : wrapHook(fn, phase))
  }
  ;(fastify as unknown as { addHook: unknown }).addHook = wrappingAddHook
}

function copyShape (wrapper: AnyFn, original: AnyFn): AnyFn {
  // Fastify validates hooks by arity and by AsyncFunction-ness; keep both, and the name for stack traces.
  Object.defineProperty(wrapper, 'length', { value: original.length })
  Object.defineProperty(wrapper, 'name', { value: original.name })
  Object.defineProperty(wrapper, kWrapped, { value: original })
  return wrapper
}

function stateOf (request: unknown): RequestState | null {
  const s = (request as StatefulRequest | undefined)?.[kRequestState]
  return s === undefined || s === null || s.done ? null : s
}

/**
 * Wraps an application hook so the time it takes (until it calls `done` or its promise settles)
 * is added to its phase. Behaviour is unchanged: same arguments, same `this`, same result, same
 * errors, same arity and async-ness as seen by Fastify's validation.
 */
export function wrapHook (fn: AnyFn, phase: number): AnyFn {
  if (typeof fn !== 'function' || (fn as unknown as Record<symbol, unknown>)[kWrapped] !== undefined) return fn
  if (fn.constructor?.name === 'AsyncFunction') {
    return copyShape(async function (this: unknown, request: unknown, ...rest: unknown[]): Promise<unknown> {
      const state = stateOf(request)
      if (state === null) return await fn.call(this, request, ...rest)
      const t0 = monotonicMs()
      try {
        return await fn.call(this, request, ...rest)
      } finally {
        const ms = monotonicMs() - t0
        state.addPhase(phase, ms)
        state.hookTime += ms
      }
    }, fn)
  }
  return copyShape(function (this: unknown, request: unknown, ...rest: unknown[]): unknown {
    const state = stateOf(request)
    if (state === null) return fn.apply(this, [request, ...rest])
    const t0 = monotonicMs()
    let settled = false
    const stop = (): void => {
      if (settled) return
      settled = true
      const ms = monotonicMs() - t0
      state.addPhase(phase, ms)
      state.hookTime += ms
    }
    // The last argument of a callback-style hook is Fastify's `done`.
    const last = rest.length - 1
    if (last >= 0 && typeof rest[last] === 'function') {
      const done = rest[last] as AnyFn
      rest[last] = function (this: unknown, ...args: unknown[]) { stop(); return done.apply(this, args) }
    }
    let result: unknown
    try {
      result = fn.apply(this, [request, ...rest])
    } catch (err) {
      stop()
      throw err
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(stop, stop)
    }
    return result
  }, fn)
}

/**
 * Wraps a route handler so the time until it returns (or its promise settles) is recorded as the
 * `handler` phase, minus the time of hooks that ran inside it (a synchronous `reply.send()` runs
 * the onSend hooks before the handler returns).
 */
export function wrapHandler (handler: AnyFn, onInternalError: (component: string, err: unknown) => void): AnyFn {
  if (typeof handler !== 'function' || (handler as unknown as Record<symbol, unknown>)[kWrapped] !== undefined) return handler
  return copyShape(function (this: unknown, request: unknown, reply: unknown): unknown {
    const state = stateOf(request)
    // The handler is timed only when an application hook ran before it: without hooks there is
    // nothing to break the request down into, and the handler's time is the request's duration
    // less Fastify's own work. This keeps routes without hooks free of phase-timing cost.
    if (state === null || state.phaseMask === 0) return handler.call(this, request, reply)
    const t0 = monotonicMs()
    const hooksBefore = state.hookTime
    const stop = (): void => {
      try {
        state.addPhase(HANDLER_PHASE, monotonicMs() - t0 - (state.hookTime - hooksBefore))
      } catch (err) {
        onInternalError('http', err)
      }
    }
    let result: unknown
    try {
      result = handler.call(this, request, reply)
    } catch (err) {
      stop()
      throw err
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(stop, stop)
    } else {
      stop()
    }
    return result
  }, handler)
}
