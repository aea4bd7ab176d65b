/**
 * Where every metric family is defined: the catalogue (name, type, labels, help) is the single
 * source of truth for the code, the docs' metric table and the operator's kit, and
 * `MetricSet` creates families from it into a prom-client Registry.
 *
 * Where a family is observed: HTTP in `hooks/http.ts`, ORM and database in `hooks/orm.ts`,
 * caches in `hooks/cache.ts`, metadata in `lib/metadata.ts`. Where it is exposed: `lib/exposition.ts`.
 */
import type { Registry } from 'prom-client'
import { CounterFamily, GaugeFamily, HistogramFamily, type FamilyConfig, type MetricFamily } from './families'
import { FNM_ERR_METRIC_CONFLICT } from './errors'

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
  // HTTP (observed in hooks/http.ts)
  httpReceived: spec({ group: 'http', name: 'http_requests_received_total', type: 'counter', labelNames: ['method'], help: 'Requests received, counted when their first onRequest hook runs (404s included).' }),
  httpRequests: spec({ group: 'http', name: 'http_requests_total', type: 'counter', labelNames: ['method', 'route', 'status_code'], help: 'Requests whose response was sent, by route template and status code.' }),
  httpDuration: spec({ group: 'http', name: 'http_request_duration_seconds', type: 'histogram', buckets: 'latency', labelNames: ['method', 'route', 'status_code'], help: 'Whole request lifecycle, from the first onRequest hook to the response being sent.' }),
  httpPhase: spec({ group: 'http', name: 'http_request_phase_duration_seconds', type: 'histogram', buckets: 'latency', labelNames: ['route', 'phase'], help: 'Time spent in the application hooks of each lifecycle phase, and in the handler.' }),
  httpRequestSize: spec({ group: 'http', name: 'http_request_size_bytes', type: 'histogram', buckets: 'size', labelNames: ['method', 'route'], help: 'Request body size in bytes (Content-Length, or bytes counted for chunked bodies).' }),
  httpResponseSize: spec({ group: 'http', name: 'http_response_size_bytes', type: 'histogram', buckets: 'size', labelNames: ['method', 'route'], help: 'Response body size in bytes (Content-Length, or bytes counted for streams).' }),
  httpInFlight: spec({ group: 'http', name: 'http_requests_in_flight', type: 'gauge', labelNames: ['method'], help: 'Requests received whose response has not been sent and that were not aborted.' }),
  httpAborted: spec({ group: 'http', name: 'http_requests_aborted_total', type: 'counter', labelNames: ['method', 'route'], help: 'Requests whose client closed the connection before the response was sent.' }),
  httpExceptions: spec({ group: 'http', name: 'http_exceptions_total', type: 'counter', labelNames: ['method', 'route', 'type'], help: 'Errors thrown or rejected by handlers and hooks, by error code or class name.' }),
  // The package itself
  selfErrors: spec({ group: 'self', name: 'metrics_errors_total', type: 'counter', labelNames: ['component'], help: 'Exceptions caught inside the metrics package itself; they never reach the application.' }),
  selfDropped: spec({ group: 'self', name: 'metrics_series_dropped_total', type: 'counter', labelNames: ['metric'], help: 'New label sets folded into __overflow__ because the family reached its series cap.' })
} satisfies Record<string, FamilySpec>)

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
}

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
  private readonly config: MetricSetConfig
  private readonly families = new Map<FamilyKey, MetricFamily<unknown>>()

  constructor (config: MetricSetConfig) {
    this.config = config
    this.registry = config.registry
    this.prefix = config.prefix
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
    const s: FamilySpec = CATALOGUE[key]
    const name = this.prefix + s.name
    const existing = this.registry.getSingleMetric(name) as unknown
    if (existing !== undefined) {
      const f = existing as MetricFamily<unknown>
      if (f.type === s.type && Array.isArray(f.labelNames) && f.labelNames.join() === s.labelNames.join() && typeof f.renderSamples === 'function') return f
      throw new FNM_ERR_METRIC_CONFLICT(name)
    }
    const isSelfDrop = key === 'selfDropped'
    const config: FamilyConfig = {
      name,
      help: s.help,
      labelNames: s.labelNames,
      collect,
      // The overflow counter itself is bounded by the number of families, so it needs no cap.
      maxSeries: isSelfDrop ? Infinity : this.config.maxSeriesPerMetric,
      onOverflow: isSelfDrop ? undefined : (f) => { this.get('selfDropped').child(f.name).value++ }
    }
    let family: MetricFamily<unknown>
    if (s.type === 'counter') family = new CounterFamily(config)
    else if (s.type === 'gauge') family = new GaugeFamily(config)
    else family = new HistogramFamily({ ...config, buckets: this.config.buckets[s.buckets ?? 'latency'] })
    this.registry.registerMetric(family as never)
    return family
  }

  /** Counts an exception caught inside the package (component: `http`, `orm`, `cache`, `collector`, ...). */
  countError (component: string): void {
    this.get('selfErrors').child(component).value++
  }
}
