/**
 * Where every metric family is defined: the catalogue (name, type, labels, help) is the single
 * source of truth for the code, the docs' metric table and the operator's kit, and
 * `MetricSet` creates families from it into a prom-client Registry.
 *
 * Where a family is observed: HTTP in `hooks/http/`, ORM and database in `hooks/orm/`,
 * caches in `hooks/cache.ts`, metadata in `lib/metadata.ts`. Where it is exposed: `lib/exposition.ts`.
 */
import type { PrometheusRegistry as Registry } from './client'
import { CounterFamily, GaugeFamily, HistogramFamily, isMetricFamily, type FamilyConfig, type MetricFamily } from './families'
import { FNM_ERR_METRIC_CONFLICT } from './errors'
import type { NativeHistogramConfig } from './native'

/** Which bucket set a histogram uses. */
export type BucketKind = 'latency' | 'size'

/** One entry of the catalogue. */
export interface FamilySpec {
  /** Name without the user's prefix. */
  readonly name: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  readonly labelNames: readonly string[]
  readonly help: string
  /** Histograms only: which default bucket set applies. */
  readonly buckets?: BucketKind
  /** The section of the metric reference it belongs to. */
  readonly group: 'http' | 'orm' | 'db' | 'cache' | 'metadata' | 'self'
}

function spec<const S extends FamilySpec> (s: S): S {
  return Object.freeze(s)
}

/** Every family this package can register, by key. Names are the spec's contract. */
export const CATALOGUE = Object.freeze({
  // HTTP (observed in hooks/http/)
  httpReceived: spec({ group: 'http', name: 'http_requests_received_total', type: 'counter', labelNames: ['method'], help: 'Requests received, counted when their first onRequest hook runs (404s included).' }),
  httpRequests: spec({ group: 'http', name: 'http_requests_total', type: 'counter', labelNames: ['method', 'route', 'status_code'], help: 'Requests whose response was sent, by route template and status code.' }),
  httpDuration: spec({ group: 'http', name: 'http_request_duration_seconds', type: 'histogram', buckets: 'latency', labelNames: ['method', 'route', 'status_code'], help: 'Whole request lifecycle, from the first onRequest hook to the response being sent.' }),
  httpPhase: spec({ group: 'http', name: 'http_request_phase_duration_seconds', type: 'histogram', buckets: 'latency', labelNames: ['route', 'phase'], help: 'Time spent in the application hooks of each lifecycle phase, and in the handler.' }),
  httpRequestSize: spec({ group: 'http', name: 'http_request_size_bytes', type: 'histogram', buckets: 'size', labelNames: ['method', 'route'], help: 'Request body size in bytes (Content-Length, or the bytes read for chunked HTTP/1 and HTTP/2 bodies without it).' }),
  httpResponseSize: spec({ group: 'http', name: 'http_response_size_bytes', type: 'histogram', buckets: 'size', labelNames: ['method', 'route'], help: 'Response body size in bytes (Content-Length, or the bytes sent for streams and hijacked replies).' }),
  httpInFlight: spec({ group: 'http', name: 'http_requests_in_flight', type: 'gauge', labelNames: ['method'], help: 'Requests received whose response has not been sent and that were not aborted.' }),
  httpAborted: spec({ group: 'http', name: 'http_requests_aborted_total', type: 'counter', labelNames: ['method', 'route'], help: 'Requests whose client closed the connection before the response was sent.' }),
  httpExceptions: spec({ group: 'http', name: 'http_exceptions_total', type: 'counter', labelNames: ['method', 'route', 'type'], help: 'Errors thrown or rejected by handlers and hooks, by error code or class name.' }),
  // Caches (observed in hooks/cache.ts)
  cacheGet: spec({ group: 'cache', name: 'cache_get_total', type: 'counter', labelNames: ['cache'], help: 'Cache reads.' }),
  cacheHits: spec({ group: 'cache', name: 'cache_get_hits_total', type: 'counter', labelNames: ['cache'], help: 'Cache reads that found a value.' }),
  cacheMisses: spec({ group: 'cache', name: 'cache_get_misses_total', type: 'counter', labelNames: ['cache'], help: 'Cache reads that found nothing (undefined or null).' }),
  cacheFails: spec({ group: 'cache', name: 'cache_get_fail_total', type: 'counter', labelNames: ['cache'], help: 'Cache reads that threw or rejected; the error still reached the caller.' }),
  cacheSets: spec({ group: 'cache', name: 'cache_set_total', type: 'counter', labelNames: ['cache'], help: 'Cache writes.' }),
  cacheInvalidations: spec({ group: 'cache', name: 'cache_invalidations_total', type: 'counter', labelNames: ['cache'], help: 'Cache entries removed, or the cache cleared (one per call).' }),
  // Metadata (lib/metadata.ts, lib/migrations.ts)
  fastifyInfo: spec({ group: 'metadata', name: 'fastify_info', type: 'gauge', labelNames: ['fastify_version', 'node_version', 'plugin_version'], help: 'Always 1; the versions of Fastify, Node.js and fastify-netbox-metrics.' }),
  migrationsApplied: spec({ group: 'metadata', name: 'db_migrations_applied', type: 'gauge', labelNames: ['context'], help: 'Migrations the MikroORM Migrator has executed; computed at scrape time (cached), never at start-up.' }),
  migrationsPending: spec({ group: 'metadata', name: 'db_migrations_pending', type: 'gauge', labelNames: ['context'], help: 'Migrations the MikroORM Migrator has not executed yet; computed at scrape time (cached), never at start-up.' }),
  // ORM (observed in hooks/orm/)
  ormInserts: spec({ group: 'orm', name: 'orm_entity_inserts_total', type: 'counter', labelNames: ['context', 'entity'], help: 'Rows inserted per entity: flushes (once per entity), em.insert/insertMany and QueryBuilder inserts (rows affected); committed work only.' }),
  ormUpdates: spec({ group: 'orm', name: 'orm_entity_updates_total', type: 'counter', labelNames: ['context', 'entity'], help: 'Rows updated per entity: flushes (once per entity), nativeUpdate and QueryBuilder updates (rows affected); committed work only.' }),
  ormDeletes: spec({ group: 'orm', name: 'orm_entity_deletes_total', type: 'counter', labelNames: ['context', 'entity'], help: 'Rows deleted per entity: flushes (orphan and cascade removals included), nativeDelete and QueryBuilder deletes (rows affected); committed work only.' }),
  ormUpserts: spec({ group: 'orm', name: 'orm_entity_upserts_total', type: 'counter', labelNames: ['context', 'entity'], help: 'Entities upserted with em.upsert/upsertMany, once per entity; committed work only.' }),
  ormInfo: spec({ group: 'metadata', name: 'orm_info', type: 'gauge', labelNames: ['context', 'vendor', 'mikro_orm_version'], help: 'Always 1: the MikroORM instances instrumented, their database platform and MikroORM version.' }),
  // Database (observed in hooks/orm/)
  dbNewConnections: spec({ group: 'db', name: 'db_new_connections_total', type: 'counter', labelNames: ['context', 'vendor'], help: 'Physical database connections opened by the pool.' }),
  dbNewConnectionErrors: spec({ group: 'db', name: 'db_new_connection_errors_total', type: 'counter', labelNames: ['context', 'vendor'], help: 'Attempts to open a physical database connection that failed.' }),
  dbExecute: spec({ group: 'db', name: 'db_execute_total', type: 'counter', labelNames: ['context', 'vendor'], help: 'SQL statements MikroORM sent (queries, DML, DDL; transaction control statements are not counted).' }),
  dbErrors: spec({ group: 'db', name: 'db_errors_total', type: 'counter', labelNames: ['context', 'vendor', 'type'], help: 'SQL statements that failed, by the MikroORM exception name of their SQLSTATE (DatabaseError when unknown).' }),
  dbDuration: spec({ group: 'db', name: 'db_query_duration_seconds', type: 'histogram', buckets: 'latency', labelNames: ['context', 'vendor', 'operation'], help: 'Duration of each SQL statement (pool wait included), by operation: select, insert, update, delete or other.' }),
  dbTransactions: spec({ group: 'db', name: 'db_transactions_total', type: 'counter', labelNames: ['context', 'vendor', 'outcome'], help: 'Top-level transactions that ended, by outcome: commit or rollback (savepoints are not counted).' }),
  dbPoolConnections: spec({ group: 'db', name: 'db_pool_connections', type: 'gauge', labelNames: ['context', 'vendor', 'state'], help: 'Pool connections at scrape time: idle, used, and pending (callers waiting for a connection).' }),
  dbPoolMax: spec({ group: 'db', name: 'db_pool_max_connections', type: 'gauge', labelNames: ['context', 'vendor'], help: 'The configured maximum size of the connection pool.' }),
  // The package itself
  selfErrors: spec({ group: 'self', name: 'metrics_errors_total', type: 'counter', labelNames: ['component'], help: 'Exceptions caught inside the metrics package itself; they never reach the application.' }),
  selfDropped: spec({ group: 'self', name: 'metrics_series_dropped_total', type: 'counter', labelNames: ['metric'], help: 'New label sets folded into __overflow__ because the family reached its series cap.' })
} satisfies Record<string, FamilySpec>)

/**
 * Every `component` of `metrics_errors_total`: where in the package an exception was caught.
 * Each series is exposed at 0 from registration, so `increase()` sees the first error.
 */
export const ERROR_COMPONENTS: readonly string[] = Object.freeze(['http', 'orm', 'cache', 'collector', 'auth', 'endpoint', 'multiprocess'])

/** Keys of the catalogue. */
export type FamilyKey = keyof typeof CATALOGUE

/** Default latency buckets in seconds: django-prometheus's, with finer steps below 10 ms. */
export const DEFAULT_LATENCY_BUCKETS: readonly number[] = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 25, 50])
/** Default size buckets in bytes: powers of 4 from 16 B to 64 MiB. */
export const DEFAULT_SIZE_BUCKETS: readonly number[] = Object.freeze(Array.from({ length: 12 }, (_, i) => 16 * 4 ** i))

/** What a `MetricSet` needs to build families. */
export interface MetricSetConfig {
  registry: Registry
  prefix: string
  buckets: { readonly latency: readonly number[], readonly size: readonly number[] }
  maxSeriesPerMetric: number
  /** Native histogram settings for the duration families (`NATIVE_FAMILIES`); null or absent: classic only. */
  nativeHistograms?: NativeHistogramConfig | null
  /** Whether the request and statement durations carry exemplars (`lib/exemplars.ts`). */
  exemplars?: boolean
}

/** The histograms that get native buckets when `nativeHistograms` is on. */
export const NATIVE_FAMILIES: ReadonlySet<FamilyKey> = new Set<FamilyKey>(['httpDuration', 'httpPhase', 'dbDuration'])

type FamilyOf<K extends FamilyKey> = (typeof CATALOGUE)[K]['type'] extends 'counter'
  ? CounterFamily
  : (typeof CATALOGUE)[K]['type'] extends 'gauge' ? GaugeFamily : HistogramFamily

/**
 * The families of one registry, created on first use and registered there. Two plugin
 * instances given the same registry share families (their counts add up); a different metric
 * already holding a name is a `FNM_ERR_METRIC_CONFLICT`.
 */
export class MetricSet {
  readonly registry: Registry
  readonly prefix: string
  /** Whether the request and statement durations carry exemplars. */
  readonly exemplars: boolean
  private readonly config: MetricSetConfig
  private readonly families = new Map<FamilyKey, MetricFamily<unknown>>()

  constructor (config: MetricSetConfig) {
    this.config = config
    this.registry = config.registry
    this.prefix = config.prefix
    this.exemplars = config.exemplars === true
  }

  /** The family for a catalogue key, created and registered on first use. */
  get<K extends FamilyKey> (key: K, collect?: FamilyConfig['collect']): FamilyOf<K> {
    let family = this.families.get(key)
    if (family === undefined) {
      family = this.create(key, collect)
      this.families.set(key, family)
    }
    return family as FamilyOf<K>
  }

  private create (key: FamilyKey, collect?: FamilyConfig['collect']): MetricFamily<unknown> {
    const family = this.findOrRegister(key, collect)
    // The package's own alert series exist at 0 from the start (an absent series that appears
    // at 1 is no increase() to Prometheus): one per error component, one per family that has a cap.
    if (key === 'selfErrors') for (const c of ERROR_COMPONENTS) family.child(c)
    if (CATALOGUE[key].group !== 'self') this.get('selfDropped').child(family.name)
    return family
  }

  private findOrRegister (key: FamilyKey, collect?: FamilyConfig['collect']): MetricFamily<unknown> {
    const s: FamilySpec = CATALOGUE[key]
    const name = this.prefix + s.name
    const existing = this.registry.getSingleMetric(name) as unknown
    if (existing !== undefined) {
      const f = existing as MetricFamily<unknown>
      if (f.type === s.type && Array.isArray(f.labelNames) && f.labelNames.join() === s.labelNames.join() && isMetricFamily(f)) return f
      throw new FNM_ERR_METRIC_CONFLICT(name)
    }
    // The package's own counters are bounded by the code (its families, its components), so
    // they need no cap, and a small maxSeriesPerMetric cannot fold them into __overflow__.
    const uncapped = s.group === 'self'
    const config: FamilyConfig = {
      name,
      help: s.help,
      labelNames: s.labelNames,
      collect,
      starts: true,
      maxSeries: uncapped ? Infinity : this.config.maxSeriesPerMetric,
      onOverflow: uncapped ? undefined : (f) => { this.get('selfDropped').child(f.name).value++ }
    }
    let family: MetricFamily<unknown>
    if (s.type === 'counter') family = new CounterFamily(config)
    else if (s.type === 'gauge') family = new GaugeFamily(config)
    else family = new HistogramFamily({ ...config, buckets: this.config.buckets[s.buckets ?? 'latency'], native: NATIVE_FAMILIES.has(key) ? this.config.nativeHistograms ?? null : null })
    this.registry.registerMetric(family as never)
    return family
  }

  /** Counts an exception caught inside the package (component: `http`, `orm`, `cache`, `collector`, ...). */
  countError (component: string): void {
    this.get('selfErrors').child(component).value++
  }
}
