/**
 * fastify-netbox-metrics: the Fastify plugin. Resolves the options once, decorates `app.metrics`
 * (present even when disabled), and when enabled installs the HTTP hooks (`hooks/http/`) and
 * the metrics endpoint (`lib/exposition.ts`).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { PrometheusRegistry } from './client'
import * as cacheHooks from '../hooks/cache'
import { installHttpHooks } from '../hooks/http'
import * as orm from '../hooks/orm'
import * as errorCodes from './errors'
import { baselineStarts, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, renderRegistryBuffer, type ExpositionFormat } from './exposition'
import { registerFastifyInfo } from './metadata'
import { MetricSet } from './metrics'
import { createAccessCheck } from './access'
import { listenerPort, serveScrape, startListener, type ScrapeServer } from './listener'
import { resolveOptions, type NetboxMetricsOptions, type ResolvedOptions } from './options'
import { markDefaultMetrics, MultiprocessStore } from './multiprocess'

/** What `app.metrics` holds. It exists whether or not the plugin is enabled. */
interface MetricsDecorator {
  /** Whether the plugin is on (the endpoint and hooks exist only then). */
  readonly enabled: boolean
  /** The Registry in use (of `@prometheus-io/client` or prom-client: `options.client` says which). */
  readonly registry: PrometheusRegistry
  /** The resolved, frozen options. */
  readonly options: ResolvedOptions
  /** The separate metrics listener when `server` is set and the app is ready, else null. */
  readonly listener: import('node:http').Server | null
  /** Renders the registry as a scrape would (also when disabled, for tests and custom routes). */
  render: (format?: 'prometheus' | 'openmetrics') => Promise<string>
  /**
   * Wraps an application cache (a `Map`, a Redis client, an object with `get`/`set`) so it is
   * counted under `name` in this app's registry; same interface and type as the cache. When the
   * plugin is disabled it returns the cache itself, unchanged. See `docs/caches.md`.
   */
  instrumentCache: <C extends object>(cache: C, opts: cacheHooks.InstrumentCacheOptions) => C
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
  const metrics = new MetricSet({ registry, prefix: options.prefix, buckets: options.buckets, maxSeriesPerMetric: options.maxSeriesPerMetric, nativeHistograms: options.nativeHistograms, exemplars: options.exemplars })
  const onInternalError = internalErrorReporter(fastify, metrics)
  const onCollectError = (_name: string, err: unknown): void => onInternalError('collector', err)

  let metricsListener: () => import('node:http').Server | null = () => null
  // The shared-directory mode (lib/multiprocess/): scrapes aggregate every process's files.
  let store: MultiprocessStore | undefined
  const renderOptions = Object.freeze({ created: options.createdTimestamps })
  const render = async (format: ExpositionFormat): Promise<string | Buffer> =>
    store !== undefined ? await store.renderBuffer(format, onCollectError, renderOptions) : await renderRegistryBuffer(registry, format, onCollectError, renderOptions)
  const decorator: MetricsDecorator = Object.freeze({
    get listener () { return metricsListener() },
    enabled: options.enabled,
    registry,
    options,
    render: async (format: 'prometheus' | 'openmetrics' = 'prometheus') => (await render(format)).toString(),
    instrumentCache: <C extends object>(cache: C, o: cacheHooks.InstrumentCacheOptions): C => cacheHooks.instrumentCacheFor(options.enabled ? metrics : undefined, cache, o)
  })
  fastify.decorate('metrics', decorator)
  if (!options.enabled) return
  if (options.multiprocess !== null) {
    // Throws FNM_ERR_MULTIPROCESS_DIR at registration when the directory is missing or not writable.
    const s = MultiprocessStore.acquire({ registry, registryClass: options.client.Registry, config: options.multiprocess, prefix: options.prefix, buckets: options.buckets, nativeHistograms: options.nativeHistograms, onError: (component, err) => onInternalError(component, err) })
    store = s
    fastify.addHook('onClose', async function netboxMetricsReleaseStore () { await s.release() })
  }

  // The package's own alert counters exist from the start, every series at 0 (lib/metrics.ts).
  metrics.get('selfErrors')
  metrics.get('selfDropped')
  // Default metrics from the registry's own client, once: none when the app's registry already
  // has them (the app called collectDefaultMetrics before registering the plugin). Marked as
  // default metrics (per process in multiprocess mode, lib/multiprocess/defaults.ts). Done here,
  // not in an onReady hook: a hook of ours would change what the app's own onReady hooks see
  // (Fastify's hooks.on-ready test "onReady does not call done" names the hook that timed out).
  if (options.defaultMetrics && registry.getSingleMetric(`${options.prefix}process_cpu_user_seconds_total`) === undefined) {
    markDefaultMetrics(registry, () => options.client.collectDefaultMetrics({ register: registry, prefix: options.prefix }))
  }
  // Start timestamps of the app's own series (lib/starts.ts): what exists at registration; later
  // series are first seen by a scrape (in multiprocess mode, by a flush). Not awaited: an await
  // here would add the plugin's routes and hooks a tick later, after the app's own (Fastify's
  // onRoute tests see that); each metric's failure goes to onCollectError.
  void baselineStarts(registry, onCollectError)
  registerFastifyInfo(metrics, fastify.version)
  // Standalone instrumentCache() wrappers and InstrumentedCacheAdapters count into the first
  // enabled plugin still open (hooks/cache.ts, "Late binding").
  if (cacheHooks.bindStandaloneCaches(metrics)) fastify.addHook('onClose', async () => { cacheHooks.releaseStandaloneCaches(metrics) })

  installHttpHooks(fastify, { metrics, exclude: options.exclude, onInternalError })

  // ORM and database families (hooks/orm/), for each MikroORM instance given.
  const detachOrms = options.orm.map((instance) => orm.attachOrm(instance, metrics, onInternalError, options.migrationsTtl, (message) => fastify.log.warn(message)))
  if (detachOrms.length > 0) fastify.addHook('onClose', async function netboxMetricsDetachOrm () { for (const detach of detachOrms) detach() })

  // The endpoint: a route of the app, or its own listener (lib/listener.ts), behind access control (lib/access.ts).
  const scrapeServer: ScrapeServer = {
    render,
    check: createAccessCheck(options.access.auth, options.access.allow, (err) => onInternalError('auth', err))
  }
  if (options.server !== null) {
    const address = options.server
    let listener: import('node:http').Server | null = null
    fastify.addHook('onReady', async function netboxMetricsListen () {
      listener = await startListener(scrapeServer, options.endpoint, address, (err) => onInternalError('endpoint', err))
      fastify.log.info({ port: listenerPort(listener), host: address.host, endpoint: options.endpoint }, 'fastify-netbox-metrics: metrics listener started')
    })
    fastify.addHook('onClose', async function netboxMetricsCloseListener () {
      if (listener === null) return
      const l = listener
      listener = null
      l.closeAllConnections()
      await new Promise<void>((resolve) => l.close(() => resolve()))
    })
    metricsListener = () => listener
  } else {
    fastify.route({
      method: 'GET',
      url: options.endpoint,
      // GET and HEAD, whatever the app's `exposeHeadRoutes` says.
      exposeHeadRoute: true,
      config: { metrics: false },
      handler: async function netboxMetricsEndpoint (request, reply) {
        // The same shape as on the separate listener (lib/access.ts ScrapeRequest).
        const answer = await serveScrape(scrapeServer, Object.freeze({ headers: request.headers, ip: request.ip, method: request.method, url: request.url, raw: request.raw, fastifyRequest: request }))
        void reply.code(answer.statusCode).headers(answer.headers)
        return answer.body
      }
    })
  }
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
  export import MetricsSubscriber = orm.MetricsSubscriber
  export const PROMETHEUS_CONTENT_TYPE: string
  export const OPENMETRICS_CONTENT_TYPE: string
  export type ScrapeRequest = import('./access').ScrapeRequest
  export type InstrumentCacheOptions = cacheHooks.InstrumentCacheOptions
  export type InstrumentedCacheAdapterOptions = cacheHooks.InstrumentedCacheAdapterOptions
  export const instrumentCache: typeof cacheHooks.instrumentCache
  export import InstrumentedCacheAdapter = cacheHooks.InstrumentedCacheAdapter
}
export = netboxMetrics
// TypeScript emits `module.exports = netboxMetrics` last, so the named exports are set on the function itself.
const exported = netboxMetrics as unknown as Record<string, unknown>
exported.default = netboxMetrics
exported.netboxMetrics = netboxMetrics
exported.errors = errorCodes
exported.PROMETHEUS_CONTENT_TYPE = PROMETHEUS_CONTENT_TYPE
exported.OPENMETRICS_CONTENT_TYPE = OPENMETRICS_CONTENT_TYPE
exported.instrumentCache = cacheHooks.instrumentCache
exported.MetricsSubscriber = orm.MetricsSubscriber
exported.InstrumentedCacheAdapter = cacheHooks.InstrumentedCacheAdapter

// Literal assignments so that Node's cjs-module-lexer sees these names for ESM named imports
// (`import { netboxMetrics } from ...`); the values above are what require() and import return.
module.exports.default = exported.default
module.exports.netboxMetrics = exported.netboxMetrics
module.exports.errors = exported.errors
module.exports.PROMETHEUS_CONTENT_TYPE = exported.PROMETHEUS_CONTENT_TYPE
module.exports.OPENMETRICS_CONTENT_TYPE = exported.OPENMETRICS_CONTENT_TYPE
module.exports.instrumentCache = exported.instrumentCache
module.exports.MetricsSubscriber = exported.MetricsSubscriber
module.exports.InstrumentedCacheAdapter = exported.InstrumentedCacheAdapter
