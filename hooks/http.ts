/**
 * Where the HTTP families are observed.
 *
 * Design (why it is cheap): every hook Fastify runs per request costs about 1% of a trivial
 * route's throughput, even empty, so the request path has exactly one hook of ours that runs for
 * every request (`onRequest`). The end of the response needs no hook and no listener per
 * response: Node's HTTP/1 server reports each finished response on its
 * `http.server.response.finish` diagnostics channel, and one 'close' listener per socket sees the
 * responses whose client went away first (see watchEnd). That replaces both `onResponse` and
 * `onRequestAbort`. `onError` runs only on the error path. Every series a request touches is
 * resolved once per route (and per status code) and kept, so a request does no label hashing.
 *
 * Phase timing adds no hook and changes nothing the application or other plugins can see (see
 * "What the plugin changes in your app" in docs/metrics.md):
 * - the handler is timed from Fastify's own `tracing:fastify.request.handler` diagnostics channel
 *   (start, end, asyncStart), subscribed only once some route has a hook to time, and never
 *   wrapped;
 * - lifecycle hooks are timed by wrapping the bound copies Fastify keeps in the route's context
 *   (never the functions in the route options that `onRoute` hooks see), once per route, on its
 *   first request (timeRouteHooks). A wrapper hands the hook exactly what Fastify handed it and
 *   returns what the hook returned; it observes completion through the `done` callback or, only
 *   for a native promise, through the promise itself. It never calls `then()` on any other value:
 *   such a hook is timed until Fastify's next step that the package sees (beginStep).
 *
 * Per-request state is keyed per installation (a symbol of each installHttpHooks call), and the
 * states of every installation that serves one raw response are chained on it (RequestState.next),
 * so two instrumented apps on one response (an outer app that hands the request to an inner one)
 * each count the request once, and only the first one replaces res.write (countingWrite).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import * as diagnostics from 'node:diagnostics_channel'
import { ServerResponse } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { monotonicMs } from '../lib/clock'
import { requestTrace } from '../lib/exemplars'
import { FNM_ERR_ROUTE_CONFIG_INVALID } from '../lib/errors'
import type { CounterSeries, GaugeSeries, HistogramSeries } from '../lib/families'
import type { MetricSet } from '../lib/metrics'
import { isPromise } from 'node:util/types'
import { requestStateKey, kResponseState } from '../lib/symbols'

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

/** What an installation lends each of its requests' states: how to settle one and where to report a failure. */
interface Installation {
  /** Settles a request once its response closes; never throws. */
  readonly settle: (state: RequestState) => void
  /** Reports an exception caught inside the package (counted, logged once). */
  readonly report: (err: unknown) => void
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
  /** Sum of every timed hook's time, to take nested hook time out of a synchronous handler. */
  hookTime = 0
  /** When the handler started (the handler channel's start), or -1 while it is not running. */
  handlerStart = -1
  /** hookTime when the handler started. */
  handlerHooks = 0
  /** A hook that returned without saying it finished, timed until the next step the package sees. */
  pending: HookRun | null = null
  /** A timed hook failed: Fastify sends the error and the handler does not run (its channel still reports a start). */
  hookFailed = false
  done = false
  /**
   * A status written straight to the socket rather than through the response (the 101 of a
   * WebSocket handshake; see watchUpgrade), or 0. When set, it is the request's status.
   */
  rawStatus = 0
  /** The responses queued behind another on the same connection, while this one is (watchEnd). */
  queue: Set<RequestState> | null = null
  /** The state of another installation (another instrumented app) serving the same raw response. */
  next: RequestState | null = null
  readonly reply: FastifyReply
  /** The write() the counting write found on the response and calls (first state of a response only). */
  write: ServerResponse['write'] | null = null
  /** The end() the recording end found on the response and calls (first state of a response only). */
  end: ServerResponse['end'] | null = null
  /** The chunk given to res.end(), kept (not measured) until the response is settled: see recordingEnd. */
  endChunk: unknown = null
  /** Its encoding argument, when a string. */
  endEncoding: unknown = undefined
  readonly inst: Installation

  constructor (start: number, route: RouteRecord, routeMethod: RouteMethodSeries, reply: FastifyReply, inst: Installation) {
    this.start = start
    this.route = route
    this.routeMethod = routeMethod
    this.reply = reply
    this.inst = inst
  }

  addPhase (phase: number, ms: number): void {
    if (this.phaseTimes === null) this.phaseTimes = new Float64Array(PHASES.length)
    this.phaseTimes[phase] += ms
    this.phaseMask |= 1 << phase
  }
}

/** One run of one timed hook: stopped by its `done`, its native promise, or the next step (beginStep). */
class HookRun {
  private readonly t0 = monotonicMs()
  private stopped = false
  constructor (private readonly state: RequestState, private readonly phase: number) {}

  stop (): void {
    if (this.stopped) return
    this.stopped = true
    const state = this.state
    try {
      if (state.pending === this) state.pending = null
      const ms = monotonicMs() - this.t0
      state.addPhase(this.phase, ms)
      state.hookTime += ms
    } catch (err) {
      state.inst.report(err)
    }
  }

  /** The hook failed (threw, rejected, or called `done` with an error). */
  fail (): void {
    this.state.hookFailed = true
    this.stop()
  }

  /** After the hook returned: unless it finished already, the next step ends it (see beginStep). */
  returned (): void {
    if (!this.stopped) this.state.pending = this
  }
}

/**
 * Fastify's next step for a request (a hook starts, the handler starts, the response ends): a
 * hook that returned without calling `done` and without a native promise (a thenable of its
 * own) has finished by now, since Fastify went on.
 */
function beginStep (state: RequestState): void {
  const pending = state.pending
  if (pending !== null) pending.stop()
}

type StatefulResponse = ServerResponse & { [kResponseState]?: RequestState }

/** Settles every state on one response: one per installation serving it. */
function settleAll (first: RequestState): void {
  for (let s: RequestState | null = first; s !== null; s = s.next) s.inst.settle(s)
}

/**
 * The response's 'close' listener, shared by every request (no closure per request): the
 * response ended, or the connection closed first. Used where Node's HTTP/1 server is not the
 * transport (Fastify's inject(), HTTP/2); see RESPONSE_FINISH.
 */
function onResponseClose (this: StatefulResponse): void {
  const state = this[kResponseState]
  if (state !== undefined) settleAll(state)
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
  const res = (message as { response?: StatefulResponse } | null)?.response
  const state = res?.[kResponseState]
  if (state !== undefined) settleAll(state)
}

function onSocketClose (this: Socket & { _httpMessage?: StatefulResponse | null }): void {
  const state = this._httpMessage?.[kResponseState]
  if (state !== undefined) settleAll(state)
  const queue = queues.get(this)
  if (queue !== undefined) {
    queues.delete(this)
    for (const queued of queue) settleAll(queued)
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
    settleAll(state)
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
 * Whether an HTTP/2 request may carry a body: its HEADERS frame did not end the stream
 * (`endAfterHeaders`, set by Node for a request without body, such as most GETs).
 */
function hasHttp2Body (req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 2) return false
  const stream = (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream
  return stream?.endAfterHeaders === false
}

/**
 * An upgrade request (Node's 'upgrade' event, as @fastify/websocket uses it): whoever completes
 * the handshake (`ws`) writes the 101 straight to the socket, never through the response, and the
 * socket then lives on as the upgraded connection, so neither the finish channel nor the response
 * would ever report the request, and the socket's 'close' would count it as aborted when the
 * connection ends. Instead the socket's write and end are watched until the first status line
 * written outside the response (the response's own writes come after its headers were sent):
 * that line completes the request with its status (101: no body), and the watch is removed.
 * Only upgrade requests pay for this.
 */
function watchUpgrade (socket: Socket, res: StatefulResponse): void {
  const s = socket as Socket & Record<'write' | 'end', AnyFn>
  const originals = { write: s.write, end: s.end }
  const own = { write: Object.hasOwn(s, 'write'), end: Object.hasOwn(s, 'end') }
  const watchers = { write: watch('write'), end: watch('end') }
  function unwatch (): void {
    for (const name of ['write', 'end'] as const) {
      if (s[name] !== watchers[name]) continue // replaced since by someone else: theirs stays
      if (own[name]) s[name] = originals[name]
      else delete (s as Partial<typeof s>)[name]
    }
  }
  function watch (name: 'write' | 'end'): AnyFn {
    return function upgradeWatch (this: Socket): unknown {
      unwatch()
      const first = res[kResponseState]
      if (first !== undefined && !first.done && !res.headersSent) {
        try {
          settleRaw(first, arguments[0])
        } catch (err) {
          first.inst.report(err)
        }
      }
      return originals[name].apply(this, arguments as unknown as unknown[])
    }
  }
  s.write = watchers.write
  s.end = watchers.end
}

/** Settles the states of a response whose status line `chunk` was written straight to the socket. */
function settleRaw (first: RequestState, chunk: unknown): void {
  const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : ''
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  if (m === null) return
  const status = Number(m[1])
  // Body bytes in the same write (a refusal such as ws's 400); a 101 has none.
  const headEnd = text.indexOf('\r\n\r\n')
  const bodyBytes = status === 101 || headEnd < 0 ? 0 : text.length - headEnd - 4
  for (let s: RequestState | null = first; s !== null; s = s.next) {
    s.rawStatus = status
    s.responseBytes = bodyBytes
  }
  settleAll(first)
}

/**
 * Counts streamed response bytes. Streams (Node and web) reach the socket through res.write;
 * Fastify ends other payloads with res.end(payload) and a Content-Length, so this runs only for
 * streamed bodies. Shared by every request; the states are on the response. Only the first
 * state of a response (of this copy of the package) replaces res.write, so it is never wrapped
 * twice and never calls itself: it calls the write it found, which is Node's own or another
 * copy's counting write.
 */
function countingWrite (this: StatefulResponse, chunk: any, ...rest: any[]): boolean {
  const first = this[kResponseState] as RequestState
  if (chunk != null) {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof rest[0] === 'string' ? rest[0] as BufferEncoding : 'utf8') : chunk.length
    for (let s: RequestState | null = first; s !== null; s = s.next) if (!s.done) s.responseBytes += n
  }
  return (first.write as AnyFn).apply(this, [chunk, ...rest])
}

/**
 * Keeps the chunk of res.end(chunk) for the response size. Fastify ends its own payloads with a
 * Content-Length, which gives the size, so the chunk is only kept (one field write) and measured
 * when the response is settled without one: a hijacked reply (`reply.hijack()`) that ends its
 * body with res.end(chunk), with or without headers passed inline to res.writeHead(), where
 * neither Fastify nor res.getHeader() knows them. Installed and chained like countingWrite.
 */
function recordingEnd (this: StatefulResponse, chunk?: unknown, encoding?: unknown): StatefulResponse {
  const first = this[kResponseState] as RequestState
  if (chunk != null && typeof chunk !== 'function') {
    for (let s: RequestState | null = first; s !== null; s = s.next) {
      if (s.done) continue
      s.endChunk = chunk
      s.endEncoding = encoding
    }
  }
  // Every response ends here: `arguments` as it is, no array built per call.
  return (first.end as AnyFn).apply(this, arguments as unknown as unknown[])
}

/** Bytes of the chunk a response was ended with (see recordingEnd). */
function endChunkBytes (state: RequestState): number {
  const chunk = state.endChunk
  if (chunk === null) return 0
  state.endChunk = null
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof state.endEncoding === 'string' && Buffer.isEncoding(state.endEncoding) ? state.endEncoding : 'utf8')
  const n = (chunk as { byteLength?: unknown }).byteLength
  return typeof n === 'number' ? n : 0
}

/**
 * The handler's timing, from Fastify's `tracing:fastify.request.handler` channel: `start` before
 * Fastify calls the handler; `end` after it returned (or threw), with `async` true when it
 * returned a thenable; then `asyncStart` once that settled (not at all when the reply was
 * hijacked: the response's end stops the clock then). One shared subscriber for every
 * installation of this copy of the package, subscribed while one of them times hooks; it finds
 * the request's states on its raw response.
 */
const handlerChannel = diagnostics.tracingChannel('fastify.request.handler')
/** Installations that time phases (subscribed to handlerChannel while more than zero). */
let handlerSubscribers = 0
interface HandlerMessage { reply?: FastifyReply, async?: boolean }

function statesOfHandler (message: unknown): RequestState | undefined {
  const reply = (message as HandlerMessage | null)?.reply
  return (reply?.raw as StatefulResponse | undefined)?.[kResponseState]
}

function startHandler (state: RequestState): void {
  beginStep(state)
  // The handler is timed only when a hook was timed before it: without hooks there is nothing to
  // break the request down into, and the handler's time is the request's duration less
  // Fastify's own work.
  if (state.done || state.phaseMask === 0 || state.hookFailed) return
  state.handlerStart = monotonicMs()
  state.handlerHooks = state.hookTime
}

function stopHandler (state: RequestState): void {
  if (state.handlerStart < 0) return
  state.addPhase(HANDLER_PHASE, monotonicMs() - state.handlerStart - (state.hookTime - state.handlerHooks))
  state.handlerStart = -1
}

/** Runs `step` for this installation's state of the handler's request (the message's reply). */
function forHandlerStates (message: unknown, step: (state: RequestState) => void): void {
  const first = statesOfHandler(message)
  if (first === undefined) return
  const reply = (message as HandlerMessage).reply
  for (let s: RequestState | null = first; s !== null; s = s.next) {
    if (s.reply !== reply) continue
    try {
      step(s)
    } catch (err) {
      s.inst.report(err)
    }
  }
}

/** Subscribes to three of the five events (Node skips the missing ones; its types want all five). */
const handlerSubscriber = {
  start (message: unknown): void { forHandlerStates(message, startHandler) },
  end (message: unknown): void { if ((message as HandlerMessage | null)?.async !== true) forHandlerStates(message, stopHandler) },
  asyncStart (message: unknown): void { forHandlerStates(message, stopHandler) }
} as unknown as diagnostics.TracingChannelSubscribers<object>

/**
 * One of Fastify's own symbol-keyed fields, found by its description on the first object that has
 * it, or null when this Fastify has no such field (callers then use the public API). Reading two
 * of them saves work on every request; see routeContextOf and contentLengthOf.
 */
function fastifySymbol (target: object, description: string): symbol | null {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === description) ?? null
}

/** A Fastify route context: the matched route's config and the bound hook arrays Fastify runs. */
type RouteContext = Record<string, unknown> & { config?: unknown }

let kRouteContext: symbol | null | undefined
/**
 * The matched route's context, or undefined when this Fastify keeps it elsewhere. Fastify's
 * public `request.routeOptions` builds a new object on every read; the route context it reads
 * from sits on the request under Fastify's `fastify.context` symbol.
 */
function routeContextOf (request: FastifyRequest): RouteContext | undefined {
  if (kRouteContext === undefined) kRouteContext = fastifySymbol(request, 'fastify.context')
  if (kRouteContext === null) return undefined
  return (request as unknown as Record<symbol, RouteContext | undefined>)[kRouteContext]
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
  const exemplars = metrics.exemplars
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
    const context = routeContextOf(request)
    const routeConfig = (context !== undefined ? context.config : request.routeOptions.config) as (Record<string, unknown> & { url?: string }) | undefined | null
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
      // A context seen for the first time: time its hooks from now on (this request included).
      if (!record.excluded && context !== undefined) timeRouteHooks(context)
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
    // A hook still pending, or a handler whose promise never reported back (a hijacked reply),
    // ends with the response.
    beginStep(state)
    stopHandler(state)
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
    // (An upgrade's status line went straight to the socket: see watchUpgrade.)
    const rawStatus = state.rawStatus
    if (rawStatus === 0 && (!res.writableEnded || neverSent)) {
      rm.aborted.value++
      return
    }
    const status = rawStatus === 0 ? res.statusCode : rawStatus
    let ss = rm.lastStatus
    if (ss === null || ss.status !== status) {
      ss = rm.byStatus.get(status) ?? newStatusSeries(rm, state.route, status)
      rm.lastStatus = ss
    }
    ss.requests.value++
    const seconds = (monotonicMs() - state.start) / 1000
    const trace = exemplars ? requestTrace(reply.request.raw.headers) : undefined
    if (trace === undefined) ss.duration.observe(seconds)
    else ss.duration.observeWithExemplar(seconds, trace.traceId, trace.spanId)
    rm.requestSize.observe(state.requestBytes)
    rm.responseSize.observe(rawStatus === 0 ? responseBodyBytes(state, reply, status) : state.responseBytes)
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
    // Streamed (res.write), and for a hijacked reply also what it gave res.end().
    return state.responseBytes + endChunkBytes(state)
  }

  const inst: Installation = {
    settle (state: RequestState): void {
      try {
        finish(state)
      } catch (err) {
        onInternalError('http', err)
      }
    },
    report (err: unknown): void { onInternalError('http', err) }
  }

  // This installation's request state, under a symbol of its own: installations never share a
  // slot, whichever copy of the package they come from.
  const kState = requestStateKey()
  type StatefulRequest = FastifyRequest & { [kState]?: RequestState | null }

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
    const state = new RequestState(monotonicMs(), record, rm, reply, inst)
    m.received.value++
    m.inFlight.value++
    request[kState] = state

    const cl = req.headers['content-length']
    if (cl !== undefined) {
      const n = Number(cl)
      if (Number.isFinite(n) && n >= 0) state.requestBytes = n
    } else if (req.headers['transfer-encoding'] !== undefined || hasHttp2Body(req)) {
      // Chunked upload, or an HTTP/2 body without content-length (HTTP/2 has no chunked
      // encoding: DATA frames until the stream ends): count what is read. prependListener does
      // not switch the stream to flowing mode (Readable#on('data') would), so whoever reads the
      // body still controls it.
      req.prependListener('data', (chunk: Buffer | string) => { state.requestBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length })
    }

    const res = reply.raw as StatefulResponse
    const first = res[kResponseState]
    if (first === undefined) {
      res[kResponseState] = state
      state.write = res.write
      res.write = countingWrite as ServerResponse['write']
      state.end = res.end
      res.end = recordingEnd as ServerResponse['end']
      watchEnd(req, res, state)
      if ((req as IncomingMessage & { upgrade?: boolean }).upgrade === true) watchUpgrade(req.socket, res)
    } else {
      joinResponse(first, state)
    }
  }

  /**
   * Another installation already serves this response (an outer instrumented app handed its raw
   * request and response to this one): this state joins its chain and is settled with it, and
   * the response's write is not wrapped again.
   */
  function joinResponse (first: RequestState, state: RequestState): void {
    if (first.done) {
      // The response already ended or closed: nothing more will be seen of it.
      finish(state)
      return
    }
    state.next = first.next
    first.next = state
  }

  fastify.decorateRequest(kState as unknown as string, null)

  if (finishSubscribers++ === 0) diagnostics.subscribe(RESPONSE_FINISH, onResponseFinish)
  let timesHandlers = false
  fastify.addHook('onClose', function netboxMetricsUnsubscribe (_instance, done) {
    if (--finishSubscribers === 0) diagnostics.unsubscribe(RESPONSE_FINISH, onResponseFinish)
    if (timesHandlers && --handlerSubscribers === 0) handlerChannel.unsubscribe(handlerSubscriber)
    timesHandlers = false
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
      const state = (request as StatefulRequest)[kState]
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

  // Validates each route's `config.metrics` as it is declared; reads the route options only.
  fastify.addHook('onRoute', function netboxMetricsOnRoute (routeOptions: RouteOptions) {
    const metricsConfig = (routeOptions.config as { metrics?: unknown } | undefined)?.metrics
    if (metricsConfig !== undefined && typeof metricsConfig !== 'boolean') {
      throw new FNM_ERR_ROUTE_CONFIG_INVALID(String(routeOptions.method), routeOptions.url, JSON.stringify(metricsConfig))
    }
  })

  /** The hook arrays this installation has timed (a route's own 404 context shares its onSend array). */
  const timedArrays = new WeakSet<unknown[]>()
  /**
   * Times the hooks of one route context: replaces, in place, each bound hook Fastify keeps in
   * the context's arrays (built at ready from the instance's and the route's hooks) by a timing
   * wrapper. Those arrays are Fastify's private copies: the functions the application registered,
   * its route options and what `onRoute` hooks see stay as they were. Runs on the context's first
   * request, from our onRequest hook; Fastify runs the arrays by index, so the hooks after ours
   * are timed from this very request on.
   */
  function timeRouteHooks (context: RouteContext): void {
    let timed = 0
    for (const [name, phase] of HOOK_PHASES) {
      const hooks = context[name]
      if (!Array.isArray(hooks) || timedArrays.has(hooks)) continue
      timedArrays.add(hooks)
      // onRequest: the hooks up to and including ours run before the request has a state.
      let from = 0
      if (name === 'onRequest') {
        const ours = hooks.findIndex((fn) => typeof fn === 'function' && fn.name === OUR_ON_REQUEST)
        from = ours + 1
      }
      for (let i = from; i < hooks.length; i++) {
        const fn = hooks[i]
        if (typeof fn !== 'function' || fn.name === OUR_ON_REQUEST) continue
        hooks[i] = timedHook(fn as AnyFn, phase)
        timed++
      }
    }
    if (timed > 0 && !timesHandlers) {
      timesHandlers = true
      if (handlerSubscribers++ === 0) handlerChannel.subscribe(handlerSubscriber)
    }
  }

  /**
   * A timing wrapper for one of Fastify's bound hooks. It calls the hook with the same `this`
   * and arguments, except that a callback-style hook gets a `done` that stops the clock and then
   * calls Fastify's own with the same arguments; it returns what the hook returned and rethrows
   * what it threw. A returned value is looked at only when it is a native promise, observed with
   * the intrinsic Promise.prototype.then (no user code runs); for anything else the hook is
   * timed until Fastify's next step (beginStep). Same name as the hook, for printRoutes().
   */
  function timedHook (fn: AnyFn, phase: number): AnyFn {
    const isAsync = fn.constructor?.name === 'AsyncFunction'
    const withPayload = phase === PRE_PARSING || phase === PRE_SERIALIZATION || phase === ON_SEND
    const run = (self: unknown, state: RequestState, args: unknown[], doneIndex: number): unknown => {
      beginStep(state)
      const hookRun = new HookRun(state, phase)
      if (!isAsync && typeof args[doneIndex] === 'function') {
        const done = args[doneIndex] as AnyFn
        args[doneIndex] = function (this: unknown, err?: unknown) {
          if (err) hookRun.fail()
          else hookRun.stop()
          return done.apply(this, arguments as unknown as unknown[])
        }
      }
      let result: unknown
      try {
        result = fn.apply(self, args)
      } catch (err) {
        hookRun.fail()
        throw err
      }
      if (isNativePromise(result)) {
        nativeThen.call(result, () => { hookRun.stop() }, () => { hookRun.fail() })
      } else {
        hookRun.returned()
      }
      return result
    }
    const wrapper = withPayload
      ? function (this: unknown, request: StatefulRequest, reply: unknown, payload: unknown, done: unknown): unknown {
        const state = request?.[kState]
        if (state === undefined || state === null || state.done) return fn.call(this, request, reply, payload, done)
        return run(this, state, [request, reply, payload, done], 3)
      }
      : function (this: unknown, request: StatefulRequest, reply: unknown, done: unknown): unknown {
        const state = request?.[kState]
        if (state === undefined || state === null || state.done) return fn.call(this, request, reply, done)
        return run(this, state, [request, reply, done], 2)
      }
    Object.defineProperty(wrapper, 'name', { value: fn.name })
    return wrapper
  }
}

/** The name Fastify gives the bound copy of our onRequest hook (skipped by timeRouteHooks). */
const OUR_ON_REQUEST = 'bound netboxMetricsOnRequest'
const PRE_PARSING = PHASES.indexOf('preParsing')
const PRE_SERIALIZATION = PHASES.indexOf('preSerialization')
const ON_SEND = PHASES.indexOf('onSend')
const nativeThen = Promise.prototype.then
/** A promise of the engine's own (not a subclass, not a thenable): observing it runs no application code. */
function isNativePromise (value: unknown): value is Promise<unknown> {
  return isPromise(value) && Object.getPrototypeOf(value) === Promise.prototype
}
