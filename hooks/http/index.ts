/**
 * Where the HTTP families are observed: installHttpHooks wires the modules of this folder, and
 * a request's state flows one way through them:
 *
 *   onRequest ─► series.ts (the route's series) ─► state.ts (one RequestState)
 *            ─► bytes.ts (request size; response write/end counted)
 *            ─► response-end.ts (how the response will be seen to end)
 *   while it runs: phases.ts (hook and handler times), onError (exceptions)
 *   at its end: response-end.ts says completed / ended by the server / aborted
 *            ─► settle ─► series.ts records it
 *
 * fastify.ts holds every access to something private of Fastify or Node, checked once.
 *
 * Design (why it is cheap): every hook Fastify runs per request costs about 1% of a trivial
 * route's throughput, even empty, so the request path has exactly one hook of ours that runs for
 * every request (`onRequest`). The end of the response needs no hook and no listener per
 * response (response-end.ts). `onError` runs only on the error path. Every series a request
 * touches is resolved once per route (and per status code) and kept (series.ts).
 *
 * Per-request state is keyed per installation (a symbol of each installHttpHooks call), and the
 * states of every installation that serves one raw response are chained on it (RequestState.next),
 * so two instrumented apps on one response (an outer app that hands the request to an inner one)
 * each count the request once, and only the first one replaces res.write (bytes.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { monotonicMs } from '../../lib/clock'
import { FNM_ERR_ROUTE_CONFIG_INVALID } from '../../lib/errors'
import type { MetricSet } from '../../lib/metrics'
import { kResponseState, requestStateKey } from '../../lib/symbols'
import { countRequestBytes, countResponseBytes } from './bytes'
import { FastifyInternals, internalsReporter } from './fastify'
import { endPhases, PhaseTimer } from './phases'
import { endingOfEnded, forget, observeResponseEnds, watchEnd } from './response-end'
import { exceptionType, SeriesCache, type RouteRecord } from './series'
import { RequestState, type Ending, type Installation, type StatefulResponse } from './state'

export { OTHER_METHOD, UNMATCHED_ROUTE, NO_STATUS, exceptionType } from './series'
export { PHASES, type Phase } from './state'
export { PREMATURE_CLOSE, SOCKET_TIMEOUT } from './response-end'

/** How the HTTP hooks decide what to observe; resolved from the plugin's options. */
export interface HttpHooksConfig {
  readonly metrics: MetricSet
  readonly exclude: ReadonlyArray<string | RegExp>
  /** Reports an exception caught inside a hook (counted, logged once). */
  readonly onInternalError: (component: string, err: unknown) => void
}

/**
 * Installs the HTTP instrumentation on a Fastify instance (the one the plugin was registered on;
 * through `fastify-plugin` its hooks are global).
 */
export function installHttpHooks (fastify: FastifyInstance, config: HttpHooksConfig): void {
  const { metrics, exclude, onInternalError } = config
  const internals = new FastifyInternals(internalsReporter(fastify, metrics))
  // This installation's request state, under a symbol of its own: installations never share a
  // slot, whichever copy of the package they come from.
  const kState = requestStateKey()
  type StatefulRequest = FastifyRequest & { [kState]?: RequestState | null }
  const phases = new PhaseTimer(kState, internals)
  const series = new SeriesCache(metrics, exclude, () => fastify.supportedMethods, internals, (context) => { phases.timeRouteHooks(context) })

  function settle (state: RequestState, ending: Ending, cause: string): void {
    if (state.done) return
    endPhases(state)
    state.done = true
    forget(state)
    series.record(state, ending, cause)
  }
  const inst: Installation = {
    settle (state, ending, cause) {
      try {
        settle(state, ending, cause)
      } catch (err) {
        onInternalError('http', err)
      }
    },
    report (err) { onInternalError('http', err) }
  }

  function startRequest (request: StatefulRequest, reply: FastifyReply, record: RouteRecord): void {
    const req: IncomingMessage = request.raw
    const rm = series.routeMethodOf(record, req.method)
    const m = rm.perMethod
    const state = new RequestState(monotonicMs(), record, rm, reply, inst)
    m.received.value++
    m.inFlight.value++
    request[kState] = state
    countRequestBytes(req, state)
    const res = reply.raw as StatefulResponse
    const first = res[kResponseState]
    if (first === undefined) {
      res[kResponseState] = state
      countResponseBytes(res, state)
      watchEnd(req, res, state, internals)
    } else if (first.done) {
      // Another installation already served this response, which ended or closed: nothing
      // more will be seen of it.
      settle(state, endingOfEnded(res), '')
    } else {
      // Another installation (an outer instrumented app handed its raw request and response to
      // this one) serves this response: this state joins its chain and is settled with it, and
      // the response's write is not wrapped again.
      state.next = first.next
      first.next = state
    }
  }

  fastify.decorateRequest(kState as unknown as string, null)

  const stopObserving = observeResponseEnds(fastify.server)
  fastify.addHook('onClose', function netboxMetricsUnsubscribe (_instance, done) {
    stopObserving()
    phases.close()
    done()
  })

  fastify.addHook('onRequest', function netboxMetricsOnRequest (request, reply, done) {
    try {
      const record = series.recordOf(request)
      if (!record.excluded) startRequest(request as StatefulRequest, reply, record)
    } catch (err) {
      onInternalError('http', err)
    }
    done()
  })

  fastify.addHook('onError', function netboxMetricsOnError (request, _reply, error, done) {
    try {
      const state = (request as StatefulRequest)[kState]
      if (state !== null && state !== undefined) series.countException(state, exceptionType(error))
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
}
