/**
 * fastify-netbox-metrics: the Fastify plugin. Resolves the options once, decorates `app.metrics`
 * (present even when disabled), and when enabled installs the HTTP hooks (`hooks/http.ts`) and
 * the metrics endpoint (`lib/exposition.ts`).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, type Registry } from 'prom-client'
import { installHttpHooks } from '../hooks/http'
import * as errorCodes from './errors'
import { negotiateFormat, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, renderRegistry, type ExpositionFormat } from './exposition'
import { MetricSet } from './metrics'
import { resolveOptions, type NetboxMetricsOptions, type ResolvedOptions } from './options'

/** What `app.metrics` holds. It exists whether or not the plugin is enabled. */
interface MetricsDecorator {
  /** Whether the plugin is on (the endpoint and hooks exist only then). */
  readonly enabled: boolean
  /** The prom-client Registry in use. */
  readonly registry: Registry
  /** The resolved, frozen options. */
  readonly options: ResolvedOptions
  /** Renders the registry as a scrape would (also when disabled, for tests and custom routes). */
  render: (format?: ExpositionFormat) => Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** fastify-netbox-metrics: the registry and helpers. */
    metrics: MetricsDecorator
  }
  interface FastifyContextConfig {
    /** fastify-netbox-metrics: `false` leaves this route out of every HTTP metric. */
    metrics?: boolean
  }
}

/** Prints the first internal error at warn level, counts every one; never throws. */
function internalErrorReporter (fastify: FastifyInstance, metrics: MetricSet): (component: string, err: unknown) => void {
  let warned = false
  return (component, err) => {
    try {
      metrics.countError(component)
      if (!warned) {
        warned = true
        fastify.log.warn({ err, component }, 'fastify-netbox-metrics: an error inside the metrics instrumentation was caught and counted in metrics_errors_total (logged once)')
      }
    } catch {
      // Nothing left to report to; the application must not notice.
    }
  }
}

/**
 * The plugin. Register it before your own hooks and routes so that every request is seen from
 * its first `onRequest` hook and every handler is timed.
 */
async function netboxMetrics (fastify: FastifyInstance, opts: NetboxMetricsOptions): Promise<void> {
  const options = resolveOptions(opts)
  const { registry } = options
  const metrics = new MetricSet({ registry, prefix: options.prefix, buckets: options.buckets, maxSeriesPerMetric: options.maxSeriesPerMetric })
  const onInternalError = internalErrorReporter(fastify, metrics)
  const onCollectError = (_name: string, err: unknown): void => onInternalError('collector', err)

  const decorator: MetricsDecorator = Object.freeze({
    enabled: options.enabled,
    registry,
    options,
    render: async (format: ExpositionFormat = 'prometheus') => await renderRegistry(registry, format, onCollectError)
  })
  fastify.decorate('metrics', decorator)
  if (!options.enabled) return

  // The package's own error counters exist from the start, so a zero is visible.
  metrics.get('selfErrors')
  metrics.get('selfDropped')
  if (options.defaultMetrics && registry.getSingleMetric(`${options.prefix}process_cpu_user_seconds_total`) === undefined) {
    collectDefaultMetrics({ register: registry, prefix: options.prefix })
  }

  installHttpHooks(fastify, { metrics, exclude: options.exclude, onInternalError })

  fastify.route({
    method: 'GET',
    url: options.endpoint,
    config: { metrics: false },
    handler: async function netboxMetricsEndpoint (request, reply) {
      const format = negotiateFormat(request.headers.accept)
      reply.header('content-type', format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE)
      reply.header('cache-control', 'no-store')
      return await renderRegistry(registry, format, onCollectError)
    }
  })
}

fp(netboxMetrics, { fastify: '5.x', name: 'fastify-netbox-metrics' })

// The verified CommonJS + ESM export recipe: `require()` returns the plugin itself, and
// `.default` / `.netboxMetrics` serve `import netboxMetrics from` and `import { netboxMetrics } from`.
// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace netboxMetrics {
  export type { NetboxMetricsOptions, ResolvedOptions, ExpositionFormat, MetricsDecorator }
  export const netboxMetrics: FastifyPluginAsync<NetboxMetricsOptions>
  export { netboxMetrics as default }
  export import errors = errorCodes
  export const PROMETHEUS_CONTENT_TYPE: string
  export const OPENMETRICS_CONTENT_TYPE: string
}
export = netboxMetrics
module.exports.default = netboxMetrics
module.exports.netboxMetrics = netboxMetrics
module.exports.errors = errorCodes
module.exports.PROMETHEUS_CONTENT_TYPE = PROMETHEUS_CONTENT_TYPE
module.exports.OPENMETRICS_CONTENT_TYPE = OPENMETRICS_CONTENT_TYPE
