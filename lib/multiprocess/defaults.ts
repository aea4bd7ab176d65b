/**
 * Which metrics of a registry are the client's default metrics (`collectDefaultMetrics`), by
 * what they are, not by their names (docs/multiprocess.md, "What a scrape returns"). A default
 * metric describes one process (its memory, its event loop), so it is reported per live process
 * with a `pid` label; every other metric is the application's, aggregated by its type and
 * `aggregator`, whatever its name (an app counter `process_jobs_total` is summed over every
 * process, alive or exited).
 *
 * A metric is a default metric when
 * 1. it was added to the registry by a `collectDefaultMetrics` call made through
 *    `markDefaultMetrics` (the plugin's `defaultMetrics` option does), or
 * 2. its `collect()` callback is the client library's own code: its source text is found in the
 *    default-metric modules (`lib/metrics/*.js`) of prom-client or @prometheus-io/client, as
 *    installed for this package, for the application (resolved from the working directory), or
 *    loaded in this process. This finds the default metrics the application registered itself
 *    with `collectDefaultMetrics`, from either client, with any prefix; or
 * 3. it has no `collect()` (the few default metrics fed otherwise: `nodejs_gc_duration_seconds`,
 *    observed by a PerformanceObserver; gauges set by a sibling's `collect()`) and its help text is
 *    word for word a `help:` of those modules (a template literal's placeholders match anything).
 * No `instanceof` is used: the metric may come from any copy of either client.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** The registry calls this module uses, common to both clients. */
export interface MetricList {
  getMetricsAsArray: () => unknown[]
}

const kMarked = Symbol.for('fastify-netbox-metrics.default-metrics')
/** The metric objects added by a marked `collectDefaultMetrics` call; shared by every copy of the package in the process. */
const MARKED: WeakSet<object> = (globalThis as Record<symbol, WeakSet<object> | undefined>)[kMarked] ??= new WeakSet()

/**
 * Runs `register` (a `collectDefaultMetrics` call on `registry`) and marks the metric objects it
 * added to the registry as default metrics.
 */
export function markDefaultMetrics<T> (registry: MetricList, register: () => T): T {
  const before = new Set(registry.getMetricsAsArray())
  const out = register()
  for (const m of registry.getMetricsAsArray()) if (!before.has(m) && typeof m === 'object' && m !== null) MARKED.add(m)
  return out
}

const CLIENTS = ['prom-client', '@prometheus-io/client']

/** The package directory holding `file`: the nearest one up whose `package.json` names one of `CLIENTS`. */
function clientRoot (file: string): string | undefined {
  let dir = dirname(file)
  for (let i = 0; i < 8; i++) {
    try {
      const name = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name
      if (typeof name === 'string') return CLIENTS.includes(name) ? dir : undefined
    } catch {}
    const up = dirname(dir)
    if (up === dir) return undefined
    dir = up
  }
  return undefined
}

/** The default-metric modules' text, and their `help:` texts as anchored patterns. */
interface ClientSources {
  texts: string[]
  helps: RegExp[]
}

const HELP = /help:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|`((?:[^`\\]|\\.)*)`)/g

/** The `help:` texts of a module, as patterns matching the whole help (placeholders match anything). */
function helpPatterns (text: string): RegExp[] {
  const out: RegExp[] = []
  for (const m of text.matchAll(HELP)) {
    const quoted = m[1] ?? m[2]
    const literal = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : m[3]
    const pattern = literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    out.push(new RegExp(`^${quoted !== undefined ? pattern : pattern.replace(/\\\$\\\{[^}]*\\\}/g, '.*')}$`))
  }
  return out
}

let sources: ClientSources | undefined
/** The default-metric modules of every client copy found (read once). */
function defaultMetricSources (): ClientSources {
  if (sources !== undefined) return sources
  const roots = new Set<string>()
  const add = (file: string): void => { const root = clientRoot(file); if (root !== undefined) roots.add(root) }
  for (const name of CLIENTS) {
    for (const from of [__dirname, process.cwd()]) {
      try { add(require.resolve(name, { paths: [from] })) } catch {}
    }
  }
  for (const file of Object.keys(require.cache)) if (/[\\/](prom-client|@prometheus-io[\\/]client)[\\/]/.test(file)) add(file)
  const texts: string[] = []
  for (const root of roots) {
    const dir = join(root, 'lib', 'metrics')
    let names: string[] = []
    try { names = readdirSync(dir) } catch {}
    for (const n of names) {
      if (!n.endsWith('.js')) continue
      try { texts.push(readFileSync(join(dir, n), 'utf8')) } catch {}
    }
  }
  sources = { texts, helps: texts.flatMap(helpPatterns) }
  return sources
}

/** Whether a metric object is one of the client's default metrics by its code (rules 2 and 3 above). */
function isClientDefault (m: { collect?: unknown, help?: unknown }): boolean {
  const { texts, helps } = defaultMetricSources()
  if (typeof m.collect === 'function') {
    const code = Function.prototype.toString.call(m.collect)
    return texts.some((t) => t.includes(code))
  }
  const help = m.help
  return typeof help === 'string' && help !== '' && helps.some((h) => h.test(help))
}

const verdicts = new WeakMap<object, boolean>()
/** Whether a metric object of a registry is one of the client's default metrics (see the rules above). */
export function isDefaultMetric (m: object): boolean {
  if (MARKED.has(m)) return true
  let verdict = verdicts.get(m)
  if (verdict === undefined) {
    verdict = isClientDefault(m as { collect?: unknown, help?: unknown })
    verdicts.set(m, verdict)
  }
  return verdict
}
