/**
 * The per-route series cache, and the recording of a request that ended. Every series a request
 * touches is resolved once per route (and per method, status code, phase, exception type) and
 * kept, so a request does no label hashing: the route's record is found by its Fastify config
 * object, the method by a string identity check, the status by one number comparison.
 */
import type { FastifyRequest } from 'fastify'
import { monotonicMs } from '../../lib/clock'
import { requestTrace } from '../../lib/exemplars'
import type { CounterSeries, GaugeSeries, HistogramSeries } from '../../lib/families'
import type { MetricSet } from '../../lib/metrics'
import { responseBodyBytes } from './bytes'
import type { FastifyInternals, RouteContext } from './fastify'
import { ABORTED, COMPLETED, PHASES, type Ending, type RequestState } from './state'

/** The `route` label of a request that matched no route (Fastify's not-found handler). */
export const UNMATCHED_ROUTE = '__unmatched__'
/** The `method` label of a method the Fastify instance does not support. */
export const OTHER_METHOD = 'other'
/**
 * The `status_code` label of a response the server ended before writing any status (a socket
 * destroyed by the app or a timeout before the headers were sent): the client received none.
 */
export const NO_STATUS = 0

/** Series of one status code of one route and method. */
export class StatusSeries {
  constructor (readonly status: number, readonly requests: CounterSeries, readonly duration: HistogramSeries) {}
}

/** Per-method series that do not depend on the route. */
export class MethodSeries {
  constructor (readonly name: string, readonly received: CounterSeries, readonly inFlight: GaugeSeries) {}
}

/** Series of one route and method, resolved on the route's first request with that method. */
export class RouteMethodSeries {
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

/** Everything known about one route (one Fastify route context). */
export class RouteRecord {
  readonly byMethod: Array<RouteMethodSeries | undefined> = []
  /** The request method seen last (Node hands out the same string for each method) and its
   * series: a string identity check instead of a Map lookup per request. */
  lastMethod: string | undefined = undefined
  lastByMethod: RouteMethodSeries | null = null
  readonly phases: Array<HistogramSeries | undefined> = []
  constructor (readonly route: string, readonly excluded: boolean) {}
}

/** The series of one installation, and how an ended request is recorded in them. */
export class SeriesCache {
  private readonly families
  private readonly exemplars: boolean
  // Methods: the instance's supported methods get their own label value, anything else is
  // `other`. Resolved on the first request, when every addHttpMethod() call has been made.
  private methodIndex: Map<string, number> | null = null
  private methodNames: string[] = []
  private readonly methodSeries: Array<MethodSeries | undefined> = []
  // Routes: one record per route context, keyed by its config object (stable for the route's life).
  private readonly records = new WeakMap<object, RouteRecord>()
  private readonly unmatched: RouteRecord

  constructor (
    metrics: MetricSet,
    private readonly exclude: ReadonlyArray<string | RegExp>,
    private readonly supportedMethods: () => string[] | undefined,
    private readonly internals: FastifyInternals,
    /** Called with a route context seen for the first time (its hooks are timed from then on). */
    private readonly onNewContext: (context: RouteContext) => void
  ) {
    this.exemplars = metrics.exemplars
    this.families = {
      received: metrics.get('httpReceived'),
      requests: metrics.get('httpRequests'),
      duration: metrics.get('httpDuration'),
      phase: metrics.get('httpPhase'),
      requestSize: metrics.get('httpRequestSize'),
      responseSize: metrics.get('httpResponseSize'),
      inFlight: metrics.get('httpInFlight'),
      aborted: metrics.get('httpAborted'),
      exceptions: metrics.get('httpExceptions')
    }
    this.unmatched = new RouteRecord(UNMATCHED_ROUTE, this.isExcluded(UNMATCHED_ROUTE))
  }

  private isExcluded (route: string): boolean {
    for (const e of this.exclude) {
      if (typeof e === 'string' ? e === route : e.test(route)) return true
    }
    return false
  }

  /** The record of the request's route. */
  recordOf (request: FastifyRequest): RouteRecord {
    const context = this.internals.routeContextOf(request)
    const routeConfig = (context !== undefined ? context.config : request.routeOptions.config) as (Record<string, unknown> & { url?: string }) | undefined | null
    if (routeConfig === undefined || routeConfig === null) return this.unmatched
    let record = this.records.get(routeConfig)
    if (record === undefined) {
      const url = routeConfig.url
      record = url === undefined ? this.unmatched : new RouteRecord(url, routeConfig.metrics === false || this.isExcluded(url))
      this.records.set(routeConfig, record)
      if (!record.excluded && context !== undefined) this.onNewContext(context)
    }
    return record
  }

  /** The series of a route for a request method. */
  routeMethodOf (record: RouteRecord, method: string | undefined): RouteMethodSeries {
    let rm = record.lastByMethod
    if (rm === null || record.lastMethod !== method) {
      rm = this.seriesOfRouteMethod(record, this.indexOfMethod(method))
      record.lastMethod = method
      record.lastByMethod = rm
    }
    return rm
  }

  private indexOfMethod (method: string | undefined): number {
    if (this.methodIndex === null) {
      const supported = this.supportedMethods() ?? ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
      this.methodNames = [...supported, OTHER_METHOD]
      this.methodIndex = new Map(supported.map((m, i) => [m, i]))
    }
    const i = method === undefined ? undefined : this.methodIndex.get(method)
    return i === undefined ? this.methodNames.length - 1 : i
  }

  private seriesOfRouteMethod (record: RouteRecord, i: number): RouteMethodSeries {
    let rm = record.byMethod[i]
    if (rm === undefined) {
      const method = this.methodNames[i]
      let m = this.methodSeries[i]
      if (m === undefined) {
        m = new MethodSeries(method, this.families.received.child(method), this.families.inFlight.child(method))
        this.methodSeries[i] = m
      }
      const f = this.families
      rm = new RouteMethodSeries(method, m, f.requestSize.child(method, record.route), f.responseSize.child(method, record.route), f.aborted.child(method, record.route))
      record.byMethod[i] = rm
    }
    return rm
  }

  /** Counts an exception of the request's route and method under its `type` label. */
  countException (state: RequestState, type: string): void {
    const rm = state.routeMethod
    let c = rm.exceptions.get(type)
    if (c === undefined) {
      c = this.families.exceptions.child(rm.method, state.route.route, type)
      rm.exceptions.set(type, c)
    }
    c.value++
  }

  /**
   * Records a request whose response ended (response-end.ts says how): aborted by the client, in
   * `http_requests_aborted_total` only; completed or ended by the server, in `http_requests_total`
   * with the status the client received (NO_STATUS when the server ended it before any), its
   * duration and sizes; ended by the server, also in `http_exceptions_total` under `cause`.
   */
  record (state: RequestState, ending: Ending, cause: string): void {
    const rm = state.routeMethod
    rm.perMethod.inFlight.value--
    if (ending === ABORTED) {
      rm.aborted.value++
      return
    }
    const reply = state.reply
    const rawStatus = state.rawStatus
    const status = rawStatus !== 0 ? rawStatus : ending === COMPLETED || reply.raw.headersSent ? reply.raw.statusCode : NO_STATUS
    let ss = rm.lastStatus
    if (ss === null || ss.status !== status) {
      ss = rm.byStatus.get(status) ?? this.newStatusSeries(rm, state.route, status)
      rm.lastStatus = ss
    }
    ss.requests.value++
    const seconds = (monotonicMs() - state.start) / 1000
    const trace = this.exemplars ? requestTrace(reply.request.raw.headers) : undefined
    if (trace === undefined) ss.duration.observe(seconds)
    else ss.duration.observeWithExemplar(seconds, trace.traceId, trace.spanId)
    rm.requestSize.observe(state.requestBytes)
    rm.responseSize.observe(rawStatus === 0 ? responseBodyBytes(state, this.internals, status, ending === COMPLETED) : state.responseBytes)
    if (state.phaseMask !== 0) this.observePhases(state)
    if (ending !== COMPLETED) this.countException(state, cause)
  }

  private newStatusSeries (rm: RouteMethodSeries, record: RouteRecord, status: number): StatusSeries {
    const code = String(status)
    const ss = new StatusSeries(status, this.families.requests.child(rm.method, record.route, code), this.families.duration.child(rm.method, record.route, code))
    rm.byStatus.set(status, ss)
    return ss
  }

  private observePhases (state: RequestState): void {
    const record = state.route
    const times = state.phaseTimes as Float64Array
    for (let p = 0; p < PHASES.length; p++) {
      if ((state.phaseMask & (1 << p)) === 0) continue
      let h = record.phases[p]
      if (h === undefined) {
        h = this.families.phase.child(record.route, PHASES[p])
        record.phases[p] = h
      }
      h.observe(times[p] / 1000)
    }
  }
}

/** The `type` label of an exception: its Fastify/Node error code, else its class name. */
export function exceptionType (err: unknown): string {
  if (err === null || typeof err !== 'object') return 'NonError'
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && /^(FST_|ERR_|E[A-Z0-9]+$)/.test(code)) return code
  const name = (err as { constructor?: { name?: unknown } }).constructor?.name
  return typeof name === 'string' && name !== '' ? name : 'Error'
}
