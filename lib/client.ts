/**
 * The Prometheus client the application has: `@prometheus-io/client` (0.16 or later, prom-client's
 * official successor) or prom-client 15. Both are optional peer dependencies and neither is
 * imported at load time: this module finds the one to use, once per registration.
 *
 * The rule (docs/configuration.md, "Which Prometheus client"):
 * 1. A registry passed in decides: the package whose `Registry` constructed it (found through the
 *    registry's constructor in Node's module cache, then proved by loading that package and
 *    comparing its `Registry` export with the constructor).
 * 2. Otherwise the client the application has already loaded, when exactly one of the two is.
 * 3. Otherwise `@prometheus-io/client` when it is installed, else prom-client.
 * 4. Neither installed: FNM_ERR_CLIENT_MISSING, naming both.
 * Default metrics then come from that same client (`collectDefaultMetrics`).
 */
import { readFileSync } from 'node:fs'
import { dirname, join, sep } from 'node:path'
import { FNM_ERR_CLIENT_MISSING } from './errors'

/** The clients this package works with, in the order rule 3 prefers them. */
export const CLIENT_PACKAGES: readonly string[] = Object.freeze(['@prometheus-io/client', 'prom-client'])

/** One sample of a metric's `get()` (the shape both clients share). */
export interface ClientMetricValue {
  value: number
  labels: Record<string, string | number | undefined>
  /** `_bucket`, `_sum`, `_count` samples of histograms and summaries. */
  metricName?: string
}

/** What a metric's `get()` resolves to in both clients. */
export interface ClientMetricObject {
  name: string
  help: string
  type: string
  aggregator?: string
  values: ClientMetricValue[]
}

/**
 * A Prometheus client's `Registry`, by its shape: what prom-client 15 and `@prometheus-io/client`
 * 0.16 have in common, so that either client's registry is accepted under `strict`. What it
 * returns is typed loosely (each client has its own `Metric` types), so that `app.metrics.registry`
 * also goes where prom-client 15's `Registry` type is asked for (`registers: [...]`).
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface PrometheusRegistry {
  metrics: () => Promise<string>
  clear: () => void
  resetMetrics: () => void
  // Method syntax on purpose (bivariant parameters): each client types these with its own types.
  registerMetric (metric: never): void
  setContentType (contentType: never): void
  getMetricsAsJSON: () => Promise<any[]>
  getMetricsAsArray: () => any[]
  removeSingleMetric: (name: string) => void
  getSingleMetric: (name: string) => any
  setDefaultLabels: (labels: object) => void
  getSingleMetricAsString: (name: string) => Promise<string>
  readonly contentType: any
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** A client as this package uses it. */
export interface PrometheusClient {
  /** The package name: `@prometheus-io/client`, `prom-client`, or a fork with the same API. */
  readonly name: string
  readonly version: string
  /** The directory the package was loaded from. */
  readonly dir: string
  /** Why this client was chosen (rule 1, 2 or 3 above), for logs and tests. */
  readonly reason: 'registry' | 'loaded' | 'installed'
  /** The client's `Registry` class (the lead's lib/multiprocess/ builds its aggregate registry with it). */
  readonly Registry: new () => PrometheusRegistry
  readonly collectDefaultMetrics: (config: { register: PrometheusRegistry, prefix?: string }) => void
}

interface ClientModule {
  Registry: new () => PrometheusRegistry
  collectDefaultMetrics: PrometheusClient['collectDefaultMetrics']
}

/** The package root above a file: the nearest directory with a package.json that has a name. */
function packageOf (file: string): { dir: string, name: string, version: string } | undefined {
  let dir = dirname(file)
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown, version?: unknown }
      if (typeof pkg.name === 'string') return { dir, name: pkg.name, version: String(pkg.version) }
    } catch {
      // no package.json here
    }
    const up = dirname(dir)
    if (up === dir) return undefined
    dir = up
  }
}

function isClientModule (m: unknown): m is ClientModule {
  if (m === null || (typeof m !== 'object' && typeof m !== 'function')) return false
  return typeof (m as ClientModule).Registry === 'function' && typeof (m as ClientModule).collectDefaultMetrics === 'function'
}

/** Loads a client's main module from its directory and checks it has the API. */
function load (dir: string, name: string, version: string, reason: PrometheusClient['reason']): PrometheusClient | undefined {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = require(dir) as unknown
  if (!isClientModule(m)) return undefined
  return Object.freeze({ name, version, dir, reason, Registry: m.Registry, collectDefaultMetrics: m.collectDefaultMetrics })
}

const byConstructor = new WeakMap<object, PrometheusClient | null>()

/**
 * The client whose `Registry` made this registry (a subclass's base counts), or undefined when no
 * module loaded in this process exports its constructor (a bundled client, a hand-made object).
 * Proved: the package found is loaded and its `Registry` export is that constructor.
 */
export function clientOfRegistry (registry: object, cache: NodeJS.Dict<NodeJS.Module> = require.cache): PrometheusClient | undefined {
  for (let proto = Object.getPrototypeOf(registry) as { constructor?: unknown } | null; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as { constructor?: unknown } | null) {
    const ctor = proto.constructor
    if (typeof ctor !== 'function') continue
    const known = byConstructor.get(ctor)
    if (known !== undefined) {
      if (known !== null) return known
      continue
    }
    let found: PrometheusClient | null = null
    for (const mod of Object.values(cache)) {
      if (mod === undefined || mod.exports !== ctor) continue
      const pkg = packageOf(mod.filename)
      if (pkg === undefined) continue
      const client = load(pkg.dir, pkg.name, pkg.version, 'registry')
      if (client !== undefined && client.Registry === ctor) {
        found = client
        break
      }
    }
    byConstructor.set(ctor, found)
    if (found !== null) return found
  }
  return undefined
}

/** The clients (of CLIENT_PACKAGES) whose registry module is in Node's module cache. */
function loadedClients (cache: NodeJS.Dict<NodeJS.Module>): Array<{ dir: string, name: string, version: string }> {
  const out = new Map<string, { dir: string, name: string, version: string }>()
  for (const file of Object.keys(cache)) {
    if (!file.endsWith(`${sep}lib${sep}registry.js`)) continue
    const pkg = packageOf(file)
    if (pkg !== undefined && CLIENT_PACKAGES.includes(pkg.name)) out.set(pkg.name, pkg)
  }
  return [...out.values()]
}

/**
 * The client to use (the rule at the top of this file).
 * @param registry the `registry` option, if given
 * @param resolve how a package name is resolved to its main file (this package's `require.resolve`)
 * @throws FNM_ERR_CLIENT_MISSING when neither client is installed
 */
export function resolveClient (registry?: object, resolve: (name: string) => string = require.resolve, cache: NodeJS.Dict<NodeJS.Module> = require.cache): PrometheusClient {
  if (registry !== undefined) {
    const own = clientOfRegistry(registry, cache)
    if (own !== undefined) return own
  }
  const loaded = loadedClients(cache)
  if (loaded.length === 1) {
    const client = load(loaded[0].dir, loaded[0].name, loaded[0].version, 'loaded')
    if (client !== undefined) return client
  }
  for (const name of CLIENT_PACKAGES) {
    let main: string
    try {
      main = resolve(name)
    } catch {
      continue
    }
    const pkg = packageOf(main)
    if (pkg === undefined) continue
    const client = load(pkg.dir, pkg.name, pkg.version, 'installed')
    if (client !== undefined) return client
  }
  throw new FNM_ERR_CLIENT_MISSING()
}
