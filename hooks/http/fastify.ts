/**
 * Every access the HTTP observation makes to something private of Fastify or Node, in one place.
 *
 * Each internal is checked once, against what the package expects, where it is first needed (at
 * the first request, or a route's first request). When a check fails, only what depends on that
 * internal is turned off (or falls back to Fastify's public API, which gives the same answer at a
 * higher cost), the failure is counted in `metrics_errors_total{component="http"}` and one warning
 * names the Fastify version and what was turned off. Absent is acceptable; a wrong number never.
 *
 * | internal | used for | when the check fails |
 * |---|---|---|
 * | the request's route context under the symbol described `fastify.context` | the route's config without building `request.routeOptions` (a new object per read); the hook arrays | the config is read from `request.routeOptions.config`; phase timing is off |
 * | the route context's bound hook arrays (`onRequest` ... `onSend`), with the plugin's own `onRequest` among them as `'bound netboxMetricsOnRequest'` | phase timing (phases.ts) | phase timing is off, `http_request_phase_duration_seconds` absent |
 * | the reply's header copy under the symbol described `fastify.reply.headers` | the response's Content-Length without `reply.getHeader()` (which lower-cases its argument each call) | `reply.getHeader()` |
 * | Node's `req.upgrade` (set by its HTTP parser) | upgrade requests, whose 101 is written straight to the socket | the request's `Connection: upgrade` and `Upgrade` headers |
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { MetricSet } from '../../lib/metrics'

/** The name Fastify gives the bound copy of the plugin's onRequest hook in a route context. */
export const OUR_ON_REQUEST = 'bound netboxMetricsOnRequest'

/** A Fastify route context: the matched route's config and the bound hook arrays Fastify runs. */
export type RouteContext = Record<string, unknown> & { config?: unknown }

/** One of Fastify's own symbol-keyed fields, found by its description, or null when it has none. */
function fastifySymbol (target: object, description: string): symbol | null {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === description) ?? null
}

/** What a failed check reports: the internal, what the package turned off, and whether that is phase timing. */
export type InternalsFailure = (internal: string, consequence: string, phasesOff?: boolean) => void

/** The probed internals of one Fastify instance (one per installation: two copies of Fastify may differ). */
export class FastifyInternals {
  private kContext: symbol | null | undefined = undefined
  private kReplyHeaders: symbol | null | undefined = undefined
  private upgradeChecked = false
  private upgradeOk = false
  /** Whether the route contexts' hook arrays are as expected: undefined until the first route context is checked. */
  private hookArraysOk: boolean | undefined = undefined

  constructor (private readonly fail: InternalsFailure) {}

  /**
   * The matched route's context, or undefined when it cannot be read (then phase timing is off
   * and the caller uses `request.routeOptions.config`). Checked on the first request: the symbol
   * exists and its context holds the config `request.routeOptions` reports.
   */
  routeContextOf (request: FastifyRequest): RouteContext | undefined {
    const k = this.kContext
    if (k !== undefined) return k === null ? undefined : (request as unknown as Record<symbol, RouteContext | undefined>)[k]
    const found = fastifySymbol(request, 'fastify.context')
    const context = found === null ? undefined : (request as unknown as Record<symbol, RouteContext | undefined>)[found]
    if (context !== undefined && context !== null && typeof context === 'object' && context.config === request.routeOptions.config) {
      this.kContext = found
      return context
    }
    this.kContext = null
    this.fail('the route context (symbol "fastify.context")', 'phase timing is off (http_request_phase_duration_seconds absent); routes are read through request.routeOptions', true)
    return undefined
  }

  /**
   * The bound hook arrays of a route context, by phase name, for phase timing; null when they are
   * not what the package expects. Checked on the first route context: each phase holds an array
   * of functions or null, and `onRequest` holds the plugin's own hook as Fastify bound it.
   */
  hookArrayOf (context: RouteContext, phase: string): Array<(...args: unknown[]) => unknown> | null {
    if (this.hookArraysOk === undefined) {
      const onRequest = context.onRequest
      this.hookArraysOk = Array.isArray(onRequest) && onRequest.some((fn) => typeof fn === 'function' && fn.name === OUR_ON_REQUEST)
      if (!this.hookArraysOk) this.fail(`the route context's hook arrays (no "${OUR_ON_REQUEST}" in onRequest)`, 'phase timing is off (http_request_phase_duration_seconds absent)', true)
    }
    if (!this.hookArraysOk) return null
    const hooks = context[phase]
    return Array.isArray(hooks) ? hooks : null
  }

  /**
   * The response's Content-Length header as Fastify sent it. Fastify hands its headers to
   * res.writeHead(), where res.getHeader() cannot see them; `reply.getHeader()` reads Fastify's
   * own copy but lower-cases its argument on every call (about 200 instructions, more than the
   * rest of the read), so the copy is read directly. Checked on the first reply: the copy is an
   * object and agrees with `reply.getHeader()`.
   */
  contentLengthOf (reply: FastifyReply): unknown {
    const k = this.kReplyHeaders
    if (k === null) return reply.getHeader('content-length')
    if (k === undefined) return this.checkReplyHeaders(reply)
    const value = (reply as unknown as Record<symbol, Record<string, unknown> | undefined>)[k]?.['content-length']
    return value !== undefined ? value : reply.getHeader('content-length')
  }

  private checkReplyHeaders (reply: FastifyReply): unknown {
    const publicValue = reply.getHeader('content-length')
    const found = fastifySymbol(reply, 'fastify.reply.headers')
    const headers = found === null ? undefined : (reply as unknown as Record<symbol, unknown>)[found]
    if (headers !== null && typeof headers === 'object' && (headers as Record<string, unknown>)['content-length'] === publicValue) {
      this.kReplyHeaders = found
    } else {
      this.kReplyHeaders = null
      this.fail('the reply headers (symbol "fastify.reply.headers")', 'response sizes are read through reply.getHeader()')
    }
    return publicValue
  }

  /**
   * Whether a request is an upgrade (a WebSocket handshake): Node's `req.upgrade`, checked on the
   * first request to be a boolean, else what the headers say (the same test Node's parser makes).
   */
  isUpgrade (req: IncomingMessage): boolean {
    const upgrade = (req as IncomingMessage & { upgrade?: unknown }).upgrade
    if (!this.upgradeChecked) {
      this.upgradeChecked = true
      this.upgradeOk = typeof upgrade === 'boolean' || req.httpVersionMajor === 2
      if (!this.upgradeOk) this.fail('Node\'s req.upgrade', 'upgrades are recognised by their headers')
    }
    if (this.upgradeOk) return upgrade === true
    const connection = req.headers.connection
    return req.headers.upgrade !== undefined && typeof connection === 'string' && /(^|,)\s*upgrade\s*(,|$)/i.test(connection)
  }
}

/**
 * The reporter of failed checks for one installation: counts each failure in
 * `metrics_errors_total{component="http"}` and logs one warning naming the Fastify version; when
 * phase timing is turned off, its family leaves the registry, so that it is absent rather than
 * empty.
 */
export function internalsReporter (fastify: FastifyInstance, metrics: MetricSet): InternalsFailure {
  return (internal, consequence, phasesOff) => {
    try {
      metrics.countError('http')
      if (phasesOff === true) metrics.registry.removeSingleMetric(metrics.get('httpPhase').name)
      fastify.log.warn({ fastifyVersion: fastify.version, internal }, `fastify-netbox-metrics: Fastify ${fastify.version} does not have ${internal} as expected: ${consequence}. No wrong number is served; please report this with the Fastify version.`)
    } catch {
      // Nothing left to report to; the application must not notice.
    }
  }
}
