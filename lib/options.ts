/**
 * The plugin's options: their types and documentation, their defaults as named constants, and
 * `resolveOptions()`, which runs once at registration, validates every option (throwing a coded
 * error that names the option) and returns a deep-frozen, fully defaulted object.
 */
import type { BlockList } from 'node:net'
import { resolveClient, type PrometheusClient, type PrometheusRegistry } from './client'
import { resolveAllow, resolveAuth, TOKEN_ENV, type AuthOption } from './access'
import { FNM_ERR_ENV_INVALID, FNM_ERR_OPTION_INVALID, FNM_ERR_OPTION_UNKNOWN } from './errors'
import { DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } from './metrics'
import { isMikroOrm } from '../hooks/orm'
import { DEFAULT_MIGRATIONS_TTL_MS } from './migrations'
import { resolve as resolvePath } from 'node:path'
import { DEFAULT_FLUSH_INTERVAL_MS, MULTIPROC_ENV_VARS, type MultiprocessConfig } from './multiprocess'
import { DEFAULT_BUCKET_FACTOR, DEFAULT_MAX_BUCKETS, DEFAULT_ZERO_THRESHOLD, schemaForFactor, type NativeHistogramConfig } from './native'

/** Default path of the metrics endpoint. */
export const DEFAULT_ENDPOINT = '/metrics'
/** Default prefix of every metric name: none, as in the spec. */
export const DEFAULT_PREFIX = ''
/** Default cap on series per family; beyond it new label sets fold into `__overflow__`. */
export const DEFAULT_MAX_SERIES_PER_METRIC = 10_000
/** The environment variable that turns the plugin on when `enabled` is not given (NetBox's name). */
export const ENABLED_ENV = 'METRICS_ENABLED'
/** Values of `METRICS_ENABLED` that mean "on", compared case-insensitively. */
export const TRUTHY_ENV_VALUES: readonly string[] = Object.freeze(['true', '1', 'yes', 'on'])
/** Values of `METRICS_ENABLED` that mean "off", compared case-insensitively. */
export const FALSY_ENV_VALUES: readonly string[] = Object.freeze(['false', '0', 'no', 'off'])

/** Options of `netboxMetrics`. Every field is optional. */
export interface NetboxMetricsOptions {
  /**
   * Turns the plugin on. When false there is no endpoint (404), no hook and no per-request work;
   * `app.metrics` still exists.
   * @default METRICS_ENABLED is "true", "1", "yes" or "on" (any case); "false", "0", "no", "off" or unset: false; any other value throws FNM_ERR_ENV_INVALID
   */
  enabled?: boolean
  /**
   * Path of the metrics endpoint (GET and HEAD). Must start with `/`.
   * @default '/metrics'
   */
  endpoint?: string
  /**
   * Prepended to every metric name, default metrics included.
   * @default ''
   */
  prefix?: string
  /**
   * The Registry to use, from `@prometheus-io/client` or prom-client 15: it also decides which
   * client the plugin uses (default metrics included; see docs/configuration.md, "Which
   * Prometheus client"). By default each plugin instance makes its own, so two Fastify apps in
   * one process never collide. Pass one to share it with your own metrics.
   * @default a new Registry of the installed client
   */
  registry?: PrometheusRegistry
  /**
   * prom-client's process and Node.js metrics (`process_*`, `nodejs_*`).
   * @default true
   */
  defaultMetrics?: boolean
  /** Histogram upper bounds: ascending, non-negative, finite, at least one each. */
  buckets?: {
    /** @default DEFAULT_LATENCY_BUCKETS (seconds) */
    latency?: readonly number[]
    /** @default DEFAULT_SIZE_BUCKETS (bytes) */
    size?: readonly number[]
  }
  /**
   * Routes to leave out of every HTTP family: route templates as registered (`'/health'`,
   * prefixes included) or RegExps tested against them.
   * @default []
   */
  exclude?: ReadonlyArray<string | RegExp>
  /**
   * Most series one family may hold; a new label set beyond it is recorded under
   * `__overflow__` and counted in `metrics_series_dropped_total`.
   * @default 10000
   */
  maxSeriesPerMetric?: number
  /**
   * A MikroORM instance (6.4+ or 7), or several: turns on the ORM and database families for
   * them (`context` label: each ORM's `contextName`). See `docs/orm.md`.
   * @default []
   */
  orm?: object | readonly object[]
  /**
   * How long, in milliseconds, the `db_migrations_applied` / `db_migrations_pending` counts of
   * each ORM are reused before MikroORM's Migrator is asked again (at a scrape, never at
   * start-up). `0` asks at every scrape. See `docs/orm.md`.
   * @default 60000
   */
  migrationsTtl?: number
  /**
   * Credentials a scrape must present: `{ token }` (Bearer), `{ basic: { username, password } }`,
   * both (either is accepted), or an async function `(request: ScrapeRequest) => boolean` (`{ headers, ip, method, url, raw, fastifyRequest }`, the same on both ports). `METRICS_TOKEN`
   * sets a bearer token when this is not given. See `docs/security.md`.
   * @default none (open), or a bearer token from METRICS_TOKEN
   */
  auth?: AuthOption
  /**
   * IP addresses and CIDR ranges (IPv4 and IPv6) that may scrape; others get 403. On the app's
   * port the client address is Fastify's `request.ip`, which honours `trustProxy`.
   * @default none (any address)
   */
  allow?: readonly string[]
  /**
   * Serve the endpoint on its own listener instead of the app's port, started when the app is
   * ready and closed with it. `METRICS_PORT` (and `METRICS_HOST`) set it too.
   * @default none (the endpoint is a route of the app)
   */
  server?: { port: number, host?: string }
  /**
   * Several processes, one truth (`docs/multiprocess.md`): every process records into files in
   * `dir` and a scrape of any of them returns the aggregate of all. `false` turns the mode off
   * even when `PROMETHEUS_MULTIPROC_DIR` is set.
   * @default on when PROMETHEUS_MULTIPROC_DIR (or prometheus_multiproc_dir) is set, with that directory
   */
  multiprocess?: false | {
    /** The shared directory; it must exist and be writable. @default PROMETHEUS_MULTIPROC_DIR */
    dir?: string
    /** Time between two snapshots; a SIGKILLed process loses at most this much. @default 1000 */
    flushIntervalMs?: number
  }
  /**
   * Native (sparse, exponential) histograms for `http_request_duration_seconds`,
   * `http_request_phase_duration_seconds` and `db_query_duration_seconds`, served in the protobuf
   * exposition Prometheus asks for when its native histograms are on (docs/native-histograms.md).
   * `true` takes client_golang's defaults; an object sets the largest bucket growth factor
   * (1.1: schema 3, about 5% relative error), the most buckets one series keeps (beyond it the
   * resolution halves), the zero bucket's width, and whether the classic buckets stay beside the
   * native ones in protobuf (`classic: false` drops them there; the text formats keep them).
   * @default false
   */
  nativeHistograms?: boolean | {
    /** @default 1.1 */
    bucketFactor?: number
    /** @default 160 */
    maxBuckets?: number
    /** @default 2 ** -128 */
    zeroThreshold?: number
    /** @default true */
    classic?: boolean
  }
  /**
   * Exemplars on the duration histograms: on `http_request_duration_seconds` the trace id (and
   * span id) of the request, from the active OpenTelemetry span when `@opentelemetry/api` is
   * installed and one is active, else from the W3C `traceparent` header; on
   * `db_query_duration_seconds` the OpenTelemetry span active around the statement. Served in
   * OpenMetrics text and in protobuf; the latest exemplar of each bucket is kept.
   * @default false
   */
  exemplars?: boolean
  /**
   * `_created` samples in the OpenMetrics exposition: when each counter, histogram and summary
   * series began (its first observation or its last reset; see docs/metrics.md, "Start
   * timestamps"). Off by default, as Prometheus advises against the extra series unless asked;
   * the protobuf exposition carries the same start as `created_timestamp` always.
   * @default false
   */
  createdTimestamps?: boolean
}

/** The options after `resolveOptions()`: every field present, the whole object frozen. */
export interface ResolvedOptions {
  readonly enabled: boolean
  readonly endpoint: string
  readonly prefix: string
  readonly registry: PrometheusRegistry
  /** The Prometheus client in use (lib/client.ts): the registry's own, or the installed one. */
  readonly client: PrometheusClient
  readonly defaultMetrics: boolean
  readonly buckets: { readonly latency: readonly number[], readonly size: readonly number[] }
  readonly exclude: ReadonlyArray<string | RegExp>
  readonly maxSeriesPerMetric: number
  /** The MikroORM instances to instrument (possibly none). */
  readonly orm: readonly object[]
  /** Milliseconds the migration counts are cached (0: every scrape). */
  readonly migrationsTtl: number
  /** Access control, null when the endpoint is open. */
  readonly access: { readonly auth: ReturnType<typeof resolveAuth>, readonly allow: BlockList | null }
  /** The separate listener, null when the endpoint is a route of the app. */
  readonly server: { readonly port: number, readonly host: string } | null
  /** The shared-directory mode (`docs/multiprocess.md`), null when off. */
  readonly multiprocess: MultiprocessConfig | null
  /** Native histograms for the duration families, null when off. */
  readonly nativeHistograms: NativeHistogramConfig | null
  /** Whether duration observations carry exemplars. */
  readonly exemplars: boolean
  /** Whether the OpenMetrics exposition has `_created` samples. */
  readonly createdTimestamps: boolean
}

const KNOWN_KEYS = new Set<string>(['enabled', 'endpoint', 'prefix', 'registry', 'defaultMetrics', 'buckets', 'exclude', 'maxSeriesPerMetric', 'orm', 'migrationsTtl', 'auth', 'allow', 'server', 'multiprocess', 'nativeHistograms', 'exemplars', 'createdTimestamps'])
const METRIC_NAME_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}

/**
 * An environment variable's value, spaces trimmed; `undefined` when unset or empty (what
 * docker-compose passes for `${VAR}` when VAR is not set).
 */
export function envValue (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name]?.trim()
  return raw === undefined || raw === '' ? undefined : raw
}

/**
 * Reads `METRICS_ENABLED`: `true`, `1`, `yes`, `on` turn the plugin on, `false`, `0`, `no`, `off`
 * leave it off (any case, spaces trimmed); unset or empty is off, as in NetBox.
 * @throws FNM_ERR_ENV_INVALID for any other value: a typo must not turn metrics off silently
 */
export function enabledFromEnv (env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = envValue(env, ENABLED_ENV)
  if (raw === undefined) return false
  const v = raw.toLowerCase()
  if (TRUTHY_ENV_VALUES.includes(v)) return true
  if (FALSY_ENV_VALUES.includes(v)) return false
  throw new FNM_ERR_ENV_INVALID(ENABLED_ENV, JSON.stringify(env[ENABLED_ENV]), `one of ${[...TRUTHY_ENV_VALUES, ...FALSY_ENV_VALUES].join(', ')} (any case), or unset`)
}

function optionalBoolean (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new FNM_ERR_OPTION_INVALID(name, `expected a boolean, got ${describe(value)}`)
  return value
}

function resolveBuckets (name: string, value: unknown, fallback: readonly number[]): readonly number[] {
  if (value === undefined) return fallback
  if (!Array.isArray(value) || value.length === 0) throw new FNM_ERR_OPTION_INVALID(name, `expected a non-empty array of numbers, got ${describe(value)}`)
  for (let i = 0; i < value.length; i++) {
    const b = value[i]
    if (typeof b !== 'number' || !Number.isFinite(b)) throw new FNM_ERR_OPTION_INVALID(`${name}[${i}]`, `expected a finite number, got ${describe(b)}`)
    if (b < 0) throw new FNM_ERR_OPTION_INVALID(`${name}[${i}]`, `buckets must not be negative, got ${b}`)
    if (i > 0 && b <= value[i - 1]) throw new FNM_ERR_OPTION_INVALID(`${name}[${i}]`, `buckets must be strictly ascending, got ${value[i - 1]} then ${b}`)
  }
  return Object.freeze([...value])
}

function isRegistry (value: unknown): value is PrometheusRegistry {
  // Either client's Registry, from any copy: the shape decides (lib/client.ts finds its client).
  const r = value as Partial<PrometheusRegistry> | null
  return r !== null && typeof r === 'object' && typeof r.registerMetric === 'function' &&
    typeof r.getSingleMetric === 'function' && typeof r.getMetricsAsArray === 'function'
}

/**
 * Validates the user's options and returns the frozen, defaulted result. Never mutates `opts`.
 * @throws FNM_ERR_OPTION_UNKNOWN for a key the plugin does not know
 * @throws FNM_ERR_OPTION_INVALID for a value of the wrong type or out of range
 */
export function resolveOptions (opts: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  if (opts === undefined || opts === null) opts = {}
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new FNM_ERR_OPTION_INVALID('options', `expected an object, got ${describe(opts)}`)
  const o = opts as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!KNOWN_KEYS.has(key)) throw new FNM_ERR_OPTION_UNKNOWN(key)
  }

  const enabled = o.enabled === undefined ? enabledFromEnv(env) : optionalBoolean('enabled', o.enabled, false)

  let endpoint = DEFAULT_ENDPOINT
  if (o.endpoint !== undefined) {
    if (typeof o.endpoint !== 'string') throw new FNM_ERR_OPTION_INVALID('endpoint', `expected a string, got ${describe(o.endpoint)}`)
    if (!o.endpoint.startsWith('/')) throw new FNM_ERR_OPTION_INVALID('endpoint', `must start with '/', got ${JSON.stringify(o.endpoint)}`)
    endpoint = o.endpoint
  }

  let prefix = DEFAULT_PREFIX
  if (o.prefix !== undefined) {
    if (typeof o.prefix !== 'string') throw new FNM_ERR_OPTION_INVALID('prefix', `expected a string, got ${describe(o.prefix)}`)
    if (o.prefix !== '' && !METRIC_NAME_PREFIX.test(o.prefix)) throw new FNM_ERR_OPTION_INVALID('prefix', `must be a valid start of a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(o.prefix)}`)
    prefix = o.prefix
  }

  if (o.registry !== undefined && !isRegistry(o.registry)) throw new FNM_ERR_OPTION_INVALID('registry', `expected a Registry of @prometheus-io/client or prom-client, got ${describe(o.registry)}`)
  // Throws FNM_ERR_CLIENT_MISSING when neither client is installed.
  const client = resolveClient(o.registry as PrometheusRegistry | undefined)
  const registry: PrometheusRegistry = o.registry !== undefined ? o.registry as PrometheusRegistry : new client.Registry()

  const defaultMetrics = optionalBoolean('defaultMetrics', o.defaultMetrics, true)

  let buckets = { latency: DEFAULT_LATENCY_BUCKETS, size: DEFAULT_SIZE_BUCKETS }
  if (o.buckets !== undefined) {
    if (o.buckets === null || typeof o.buckets !== 'object' || Array.isArray(o.buckets)) throw new FNM_ERR_OPTION_INVALID('buckets', `expected an object { latency?, size? }, got ${describe(o.buckets)}`)
    const b = o.buckets as Record<string, unknown>
    for (const key of Object.keys(b)) {
      if (key !== 'latency' && key !== 'size') throw new FNM_ERR_OPTION_UNKNOWN(`buckets.${key}`)
    }
    buckets = {
      latency: resolveBuckets('buckets.latency', b.latency, DEFAULT_LATENCY_BUCKETS),
      size: resolveBuckets('buckets.size', b.size, DEFAULT_SIZE_BUCKETS)
    }
  }

  let exclude: ReadonlyArray<string | RegExp> = Object.freeze([])
  if (o.exclude !== undefined) {
    if (!Array.isArray(o.exclude)) throw new FNM_ERR_OPTION_INVALID('exclude', `expected an array of strings or RegExps, got ${describe(o.exclude)}`)
    o.exclude.forEach((e: unknown, i: number) => {
      if (typeof e !== 'string' && !(e instanceof RegExp)) throw new FNM_ERR_OPTION_INVALID(`exclude[${i}]`, `expected a string or a RegExp, got ${describe(e)}`)
    })
    // A RegExp with the g or y flag keeps state between tests; copy it without them.
    exclude = Object.freeze(o.exclude.map((e: string | RegExp) => typeof e === 'string' ? e : new RegExp(e.source, e.flags.replace(/[gy]/g, ''))))
  }

  let maxSeriesPerMetric = DEFAULT_MAX_SERIES_PER_METRIC
  if (o.maxSeriesPerMetric !== undefined) {
    const m = o.maxSeriesPerMetric
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 1) throw new FNM_ERR_OPTION_INVALID('maxSeriesPerMetric', `expected a positive integer, got ${describe(m)}`)
    maxSeriesPerMetric = m
  }

  let orm: readonly object[] = []
  if (o.orm !== undefined) {
    const list: unknown[] = Array.isArray(o.orm) ? o.orm : [o.orm]
    list.forEach((x, i) => {
      if (!isMikroOrm(x)) throw new FNM_ERR_OPTION_INVALID(Array.isArray(o.orm) ? `orm[${i}]` : 'orm', `expected a MikroORM instance (from MikroORM.init()), got ${describe(x)}`)
    })
    orm = Object.freeze([...new Set(list as object[])])
  }

  let migrationsTtl = DEFAULT_MIGRATIONS_TTL_MS
  if (o.migrationsTtl !== undefined) {
    const v = o.migrationsTtl
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new FNM_ERR_OPTION_INVALID('migrationsTtl', `expected a number of milliseconds >= 0, got ${describe(v)}`)
    migrationsTtl = v
  }

  const access = Object.freeze({ auth: resolveAuth(o.auth, envValue(env, TOKEN_ENV)), allow: resolveAllow(o.allow) })
  const server = resolveServer(o.server, env)

  const multiprocess = resolveMultiprocess(o.multiprocess, env)
  const nativeHistograms = resolveNativeHistograms(o.nativeHistograms)
  const exemplars = optionalBoolean('exemplars', o.exemplars, false)
  const createdTimestamps = optionalBoolean('createdTimestamps', o.createdTimestamps, false)

  return Object.freeze({
    enabled,
    endpoint,
    prefix,
    registry,
    client,
    defaultMetrics,
    buckets: Object.freeze(buckets),
    exclude,
    maxSeriesPerMetric,
    orm,
    migrationsTtl,
    access,
    server,
    multiprocess,
    nativeHistograms,
    exemplars,
    createdTimestamps
  })
}

function resolveNativeHistograms (value: unknown): NativeHistogramConfig | null {
  if (value === undefined || value === false) return null
  const o: Record<string, unknown> = value === true ? {} : value as Record<string, unknown>
  if (value !== true && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw new FNM_ERR_OPTION_INVALID('nativeHistograms', `expected a boolean or an object { bucketFactor?, maxBuckets?, zeroThreshold?, classic? }, got ${describe(value)}`)
  }
  for (const key of Object.keys(o)) {
    if (!['bucketFactor', 'maxBuckets', 'zeroThreshold', 'classic'].includes(key)) throw new FNM_ERR_OPTION_UNKNOWN(`nativeHistograms.${key}`)
  }
  const bucketFactor = o.bucketFactor ?? DEFAULT_BUCKET_FACTOR
  if (typeof bucketFactor !== 'number' || !Number.isFinite(bucketFactor) || bucketFactor <= 1) throw new FNM_ERR_OPTION_INVALID('nativeHistograms.bucketFactor', `expected a finite number greater than 1, got ${describe(bucketFactor)}`)
  const maxBuckets = o.maxBuckets ?? DEFAULT_MAX_BUCKETS
  if (typeof maxBuckets !== 'number' || !Number.isInteger(maxBuckets) || maxBuckets < 1 || maxBuckets > 65536) throw new FNM_ERR_OPTION_INVALID('nativeHistograms.maxBuckets', `expected an integer from 1 to 65536, got ${describe(maxBuckets)}`)
  const zeroThreshold = o.zeroThreshold ?? DEFAULT_ZERO_THRESHOLD
  if (typeof zeroThreshold !== 'number' || !Number.isFinite(zeroThreshold) || zeroThreshold < 0) throw new FNM_ERR_OPTION_INVALID('nativeHistograms.zeroThreshold', `expected a finite number >= 0, got ${describe(zeroThreshold)}`)
  const classic = optionalBoolean('nativeHistograms.classic', o.classic, true)
  return Object.freeze({ bucketFactor, schema: schemaForFactor(bucketFactor), maxBuckets, zeroThreshold, classic })
}

/** The directory named by PROMETHEUS_MULTIPROC_DIR or prometheus_multiproc_dir, if any. */
export function multiprocessDirFromEnv (env: NodeJS.ProcessEnv = process.env): { dir: string, source: string } | undefined {
  for (const name of MULTIPROC_ENV_VARS) {
    const dir = envValue(env, name)
    if (dir !== undefined) return { dir, source: name }
  }
  return undefined
}

function resolveMultiprocess (value: unknown, env: NodeJS.ProcessEnv): MultiprocessConfig | null {
  if (value === false) return null
  const fromEnv = multiprocessDirFromEnv(env)
  if (value === undefined) {
    return fromEnv === undefined ? null : Object.freeze({ dir: resolvePath(fromEnv.dir), flushIntervalMs: DEFAULT_FLUSH_INTERVAL_MS, source: fromEnv.source })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FNM_ERR_OPTION_INVALID('multiprocess', `expected false or an object { dir?, flushIntervalMs? }, got ${describe(value)}`)
  const m = value as Record<string, unknown>
  for (const key of Object.keys(m)) {
    if (key !== 'dir' && key !== 'flushIntervalMs') throw new FNM_ERR_OPTION_UNKNOWN(`multiprocess.${key}`)
  }
  let dir: { dir: string, source: string }
  if (m.dir !== undefined) {
    if (typeof m.dir !== 'string' || m.dir.trim() === '') throw new FNM_ERR_OPTION_INVALID('multiprocess.dir', `expected a non-empty string, got ${describe(m.dir)}`)
    dir = { dir: m.dir, source: 'option multiprocess.dir' }
  } else if (fromEnv !== undefined) {
    dir = fromEnv
  } else {
    throw new FNM_ERR_OPTION_INVALID('multiprocess.dir', `required when neither ${MULTIPROC_ENV_VARS.join(' nor ')} is set`)
  }
  let flushIntervalMs = DEFAULT_FLUSH_INTERVAL_MS
  if (m.flushIntervalMs !== undefined) {
    const f = m.flushIntervalMs
    if (typeof f !== 'number' || !Number.isInteger(f) || f < 10 || f > 3_600_000) throw new FNM_ERR_OPTION_INVALID('multiprocess.flushIntervalMs', `expected an integer number of milliseconds from 10 to 3600000, got ${describe(f)}`)
    flushIntervalMs = f
  }
  return Object.freeze({ dir: resolvePath(dir.dir), flushIntervalMs, source: dir.source })
}

/** The environment variable that moves the endpoint to its own port (like `server.port`). */
export const PORT_ENV = 'METRICS_PORT'
/** The environment variable for the separate listener's host (like `server.host`). */
export const HOST_ENV = 'METRICS_HOST'
/** Default host of the separate listener: loopback, so nothing is exposed by accident. */
export const DEFAULT_SERVER_HOST = '127.0.0.1'

function resolvePort (name: string, value: unknown): number {
  const port = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new FNM_ERR_OPTION_INVALID(name, `expected a port number (0-65535), got ${describe(value)}`)
  return port
}

function resolveServer (value: unknown, env: NodeJS.ProcessEnv): ResolvedOptions['server'] {
  if (value === undefined) {
    // Empty means unset (docker-compose's `${METRICS_HOST}` when the variable is not set): an
    // empty host must not make the listener bind every interface.
    const port = envValue(env, PORT_ENV)
    if (port === undefined) return null
    const n = /^\d+$/.test(port) ? Number(port) : NaN
    if (!Number.isInteger(n) || n > 65535) throw new FNM_ERR_ENV_INVALID(PORT_ENV, JSON.stringify(env[PORT_ENV]), 'a port number (0-65535), or unset')
    return Object.freeze({ port: n, host: envValue(env, HOST_ENV) ?? DEFAULT_SERVER_HOST })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FNM_ERR_OPTION_INVALID('server', `expected { port, host? }, got ${describe(value)}`)
  const o = value as Record<string, unknown>
  for (const k of Object.keys(o)) if (k !== 'port' && k !== 'host') throw new FNM_ERR_OPTION_UNKNOWN(`server.${k}`)
  const port = resolvePort('server.port', o.port)
  if (o.host !== undefined && (typeof o.host !== 'string' || o.host === '')) throw new FNM_ERR_OPTION_INVALID('server.host', `expected a host name or address, got ${describe(o.host)}`)
  return Object.freeze({ port, host: (o.host as string | undefined) ?? DEFAULT_SERVER_HOST })
}
