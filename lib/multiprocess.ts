/**
 * Several processes, one truth: the shared-directory mode (`PROMETHEUS_MULTIPROC_DIR`).
 *
 * Every process keeps counting in memory exactly as in single-process mode (the hot path does
 * not change). A `MultiprocessStore`, one per registry, writes a snapshot of every family of the
 * registry to its own file in the directory: on a timer (`flushIntervalMs`, unref'd), on each
 * scrape it serves, and a final one when it closes or the process exits. Files are written to a
 * temporary name and renamed, so a reader never sees a torn file.
 *
 * A scrape of any process reads every file and sums counters and histograms over live and dead
 * processes; gauges come from live processes only, each family with its own aggregation. The
 * files of dead processes are merged into one archive (counters and histograms only) under a
 * lock, then removed, so the directory holds about one file per live process plus the archive.
 * The archive records the ids it has merged, so a crash between writing it and removing a file,
 * or a scrape racing with a merge, never counts a file twice.
 *
 * `docs/multiprocess.md` describes the design, the file format and the operator's side.
 */
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Registry, type MetricObjectWithValues, type MetricValue, type MetricValueWithName } from 'prom-client'
import { FNM_ERR_MULTIPROCESS_DIR } from './errors'
import { renderRegistry, type CollectErrorHandler, type ExpositionFormat } from './exposition'
import { CounterFamily, GaugeFamily, HistogramFamily, isMetricFamily, type MetricFamily, type CounterSeries, type FamilyType, type GaugeSeries, type HistogramSeries } from './families'
import { CATALOGUE, type FamilyKey } from './metrics'

/** Default time between two snapshots of a process; a SIGKILL loses at most this much. */
export const DEFAULT_FLUSH_INTERVAL_MS = 1000
/** The environment variables that turn the mode on, in order of precedence (prometheus_client's). */
export const MULTIPROC_ENV_VARS: readonly string[] = Object.freeze(['PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir'])
/** Name of the archive holding the totals of processes that have exited. */
export const ARCHIVE_FILE = 'fnm-archive.json'
/** Name of the lock file guarding the archive. */
export const LOCK_FILE = 'fnm-archive.lock'
const BREAKER_FILE = 'fnm-archive.lock.break'
const TMP_PREFIX = '.fnm-tmp-'
const FORMAT = 'fastify-netbox-metrics/multiprocess'
const VERSION = 1
/** A merged file's id stays recorded in the archive at least this long (a slow scrape's window). */
const MERGED_ID_TTL_MS = 10 * 60_000
/** A breaker file older than this was left by a process that died while breaking a stale lock. */
const STALE_BREAKER_MS = 10_000
/** A lock of another host (or unreadable) older than this is considered abandoned. */
const STALE_FOREIGN_LOCK_MS = 60_000
/**
 * `fnm-<host>-<pid>-<process start>-<random>.json`: the host hash and the process start time
 * (Linux `/proc/<pid>/stat`, `0` elsewhere) make pid reuse harmless; the random part separates
 * two registries of one process.
 */
const PROCESS_FILE = /^fnm-([0-9a-f]{8})-(\d+)-(\d+)-([0-9a-f]{12})\.json$/
const TMP_FILE = /^\.fnm-tmp-([0-9a-f]{8})-(\d+)-(\d+)-/

/** How a gauge family is combined across live processes. */
export type GaugeMode = 'sum' | 'max' | 'latest'

/**
 * Per-family aggregation of the gauges of the catalogue. `sum`: added over live processes.
 * `max`: info gauges, deduplicated (each label set once, value 1). `latest`: one value for the
 * whole application (the database's migrations): the scraping process's own, else the freshest
 * live process's. A gauge not listed is summed.
 */
export const GAUGE_MODES: Readonly<Partial<Record<FamilyKey, GaugeMode>>> = Object.freeze({
  httpInFlight: 'sum',
  dbPoolConnections: 'sum',
  dbPoolMax: 'sum',
  fastifyInfo: 'max',
  ormInfo: 'max',
  migrationsApplied: 'latest',
  migrationsPending: 'latest'
})

/** The resolved `multiprocess` option. */
export interface MultiprocessConfig {
  /** Absolute path of the shared directory. */
  readonly dir: string
  readonly flushIntervalMs: number
  /** Where the directory came from: `'option'` or the environment variable's name. */
  readonly source: string
}

// ---------------------------------------------------------------------------------------------
// File format

/** One family in a snapshot. Each series is its label values followed by its numbers. */
export interface FamilySnapshot {
  name: string
  type: FamilyType
  help: string
  labelNames: string[]
  /** Gauges: how they combine. */
  mode?: GaugeMode
  /** Histograms: the finite upper bounds. */
  buckets?: number[]
  /**
   * counter, gauge: `[...labelValues, value]`; histogram: `[...labelValues, sum, count,
   * ...counts]` with non-cumulative counts, the last one for `+Inf`; trailing zero counts are
   * left out (a missing count is 0).
   */
  series: Array<Array<string | number | null | number[]>>
}

/** A metric that is not ours (prom-client's default metrics, the app's own), live processes only. */
export interface ForeignSnapshot {
  name: string
  help: string
  type: string
  values: Array<{ metricName?: string, labels: Record<string, string | number>, value: number }>
}

/** The content of one process file. */
export interface ProcessSnapshot {
  format: string
  v: number
  host: string
  pid: number
  pstart: string
  id: string
  startedAt: number
  /** When the snapshot was taken (ms since the epoch): the liveness heartbeat. */
  heartbeat: number
  intervalMs: number
  seq: number
  /** Written by a closing store or an exiting process: nothing follows. */
  final: boolean
  families: FamilySnapshot[]
  foreign: ForeignSnapshot[]
}

/** The content of the archive. */
export interface ArchiveSnapshot {
  format: string
  v: number
  /** Ids of the process files merged in, with when; a file listed here is never counted again. */
  merged: Record<string, number>
  families: FamilySnapshot[]
}

// ---------------------------------------------------------------------------------------------
// Processes

let hostHash: string | undefined
/** A short hash of this host's name. */
export function hostId (): string {
  hostHash ??= createHash('sha1').update(hostname()).digest('hex').slice(0, 8)
  return hostHash
}

/** The process's start time in clock ticks since boot (Linux), or `'0'` when unknown. */
export function processStart (pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = fields[19]
    return start !== undefined && /^\d+$/.test(start) ? start : '0'
  } catch {
    return '0'
  }
}

/** Whether the process `pid` that started at `pstart` still runs (on this host). */
export function processAlive (pid: number, pstart: string): boolean {
  if (pid === process.pid) return pstart === '0' || pstart === ownStart()
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (pstart === '0') return true
  const now = processStart(pid)
  return now === '0' || now === pstart
}

let ownStartValue: string | undefined
function ownStart (): string {
  ownStartValue ??= processStart(process.pid)
  return ownStartValue
}

/**
 * Checks that `dir` is a directory this process can create, rename and remove files in.
 * @throws FNM_ERR_MULTIPROCESS_DIR otherwise
 */
export function checkDirectory (config: MultiprocessConfig): void {
  const { dir, source } = config
  let isDir: boolean
  try {
    isDir = statSync(dir).isDirectory()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, code === 'ENOENT' ? 'it does not exist (create it, writable by every worker, before starting them)' : `it cannot be read (${code ?? String(err)})`)
  }
  if (!isDir) throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, 'it is not a directory')
  const probe = join(dir, `${TMP_PREFIX}${hostId()}-${process.pid}-${ownStart()}-probe-${randomBytes(4).toString('hex')}`)
  try {
    writeFileSync(probe, '')
    renameSync(probe, `${probe}-renamed`)
    unlinkSync(`${probe}-renamed`)
  } catch (err) {
    try { unlinkSync(probe) } catch {}
    throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, `it is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
}

// ---------------------------------------------------------------------------------------------
// Aggregation

function sameArray (a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function num (v: unknown): number {
  return typeof v === 'number' ? v : 0
}

/**
 * Adds `x` to a list of non-overlapping partials exactly (Shewchuk's algorithm, as in Python's
 * `math.fsum`). Histogram sums are added this way, so the result does not depend on the order
 * of the processes, nor on which of them were merged into the archive: an unchanged total is
 * rendered identically at every scrape, and a growing one never shows a rounding dip (which
 * Prometheus would take for a counter reset).
 */
export function addExact (partials: number[], x: number): void {
  let i = 0
  for (let j = 0; j < partials.length; j++) {
    let y = partials[j]
    if (Math.abs(x) < Math.abs(y)) { const t = x; x = y; y = t }
    const hi = x + y
    const lo = y - (hi - x)
    if (lo !== 0) partials[i++] = lo
    x = hi
  }
  partials.length = i
  partials.push(x)
}

/** The correctly rounded value of exact partials (`math.fsum`'s final step). */
export function exactValue (partials: readonly number[]): number {
  let n = partials.length
  if (n === 0) return 0
  let hi = partials[--n]
  let lo = 0
  while (n > 0) {
    const x = hi
    const y = partials[--n]
    hi = x + y
    const yr = hi - x
    lo = y - yr
    if (lo !== 0) break
  }
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const y = lo * 2
    const x = hi + y
    if (y === x - hi) hi = x
  }
  return hi
}

/** A histogram `_sum` in a snapshot: a number, or exact partials (archive). */
function addSum (partials: number[], v: unknown): void {
  if (typeof v === 'number') { if (Number.isFinite(v)) addExact(partials, v) } else if (Array.isArray(v)) { for (const p of v) if (typeof p === 'number' && Number.isFinite(p)) addExact(partials, p) }
}

interface AggFamily {
  family: MetricFamily<unknown>
  type: FamilyType
  mode: GaugeMode
  labelNames: string[]
  bounds?: number[]
  /** `latest` gauges: the heartbeat of the source of each series' value. */
  freshness?: Map<unknown, number>
  /** Histograms: the exact partials of each series' `_sum`. */
  sums?: Map<HistogramSeries, number[]>
}

interface AggForeign {
  name: string
  help: string
  type: string
  values: ForeignSnapshot['values']
}

/** Where a snapshot comes from, which decides what of it counts. */
type SourceKind = 'local' | 'live' | 'dead'

/**
 * Sums snapshots into lean families. Counters and histograms are added from every source;
 * gauges from local and live ones only, by their mode; foreign metrics from local and live ones,
 * each sample with a `pid` label. The first snapshot of a family decides its help, label names
 * and buckets; a later one with other label names or another type is left out (and reported).
 */
export class Aggregate {
  readonly families = new Map<string, AggFamily>()
  readonly foreign = new Map<string, AggForeign>()
  /**
   * @param keepLayouts the archive's way: a histogram with other buckets is kept apart, as it
   *   is, so that it is re-bucketed only once, by the scrape (re-bucketing twice could move
   *   counts up a bucket when a file is merged, and a cumulative bucket would go down)
   * @param preferredBounds the scraping process's own buckets, by family name: the layout a
   *   scrape renders, whichever file comes first
   */
  constructor (private readonly onMismatch: (name: string) => void, private readonly keepLayouts = false, private readonly preferredBounds?: ReadonlyMap<string, readonly number[]>) {}

  addFamilies (families: readonly FamilySnapshot[], kind: SourceKind, heartbeat: number): void {
    for (const f of families) {
      if (f.type === 'gauge' && kind === 'dead') continue
      this.addFamily(f, kind, heartbeat)
    }
  }

  private addFamily (f: FamilySnapshot, kind: SourceKind, heartbeat: number): void {
    const key = this.keepLayouts && f.type === 'histogram' ? `${f.name}\u0000${(f.buckets ?? []).join(',')}` : f.name
    let agg = this.families.get(key)
    if (agg === undefined) {
      const config = { name: f.name, help: f.help, labelNames: f.labelNames }
      const bounds = f.type !== 'histogram' ? undefined : this.keepLayouts ? f.buckets ?? [] : [...(this.preferredBounds?.get(f.name) ?? f.buckets ?? [])]
      const family = f.type === 'counter'
        ? new CounterFamily(config)
        : f.type === 'gauge' ? new GaugeFamily(config) : new HistogramFamily({ ...config, buckets: bounds ?? [] })
      agg = { family, type: f.type, mode: f.mode ?? 'sum', labelNames: f.labelNames, bounds }
      if (agg.mode === 'latest') agg.freshness = new Map()
      if (f.type === 'histogram') agg.sums = new Map()
      this.families.set(key, agg)
    } else if (agg.type !== f.type || !sameArray(agg.labelNames, f.labelNames)) {
      this.onMismatch(f.name)
      return
    }
    const n = f.labelNames.length
    const fam = agg.family
    if (agg.type === 'counter') {
      for (const s of f.series) (fam.child(...(s.slice(0, n) as string[])) as CounterSeries).value += num(s[n])
    } else if (agg.type === 'gauge') {
      for (const s of f.series) {
        const g = fam.child(...(s.slice(0, n) as string[])) as GaugeSeries
        const v = typeof s[n] === 'number' ? s[n] as number : NaN
        if (agg.mode === 'sum') g.value += v
        else if (agg.mode === 'max') g.value = g.value === 0 ? v : Math.max(g.value, v)
        else {
          const at = kind === 'local' ? Infinity : heartbeat
          const fresh = agg.freshness as Map<unknown, number>
          if ((fresh.get(g) ?? -1) < at) { fresh.set(g, at); g.value = v }
        }
      }
    } else {
      const same = f.buckets !== undefined && agg.bounds !== undefined && sameArray(f.buckets, agg.bounds)
      for (const s of f.series) {
        const h = fam.child(...(s.slice(0, n) as string[])) as HistogramSeries
        let partials = (agg.sums as Map<HistogramSeries, number[]>).get(h)
        if (partials === undefined) { partials = []; (agg.sums as Map<HistogramSeries, number[]>).set(h, partials) }
        addSum(partials, s[n])
        h.count += num(s[n + 1])
        const counts = h.counts
        if (same) {
          for (let i = 0; i < counts.length; i++) counts[i] += num(s[n + 2 + i])
        } else {
          // Other buckets (a configuration change between deploys): each old bucket goes into the
          // first bucket whose bound is at least its own; _sum and _count stay exact.
          const from = f.buckets ?? []
          const to = h.upperBounds
          for (let i = 0; i <= from.length; i++) {
            const c = num(s[n + 2 + i])
            if (c === 0) continue
            const bound = i < from.length ? from[i] : Infinity
            let j = 0
            while (j < to.length && to[j] < bound) j++
            counts[j] += c
          }
        }
      }
    }
  }

  addForeign (foreign: readonly ForeignSnapshot[], pid: number): void {
    const pidText = String(pid)
    for (const m of foreign) {
      let agg = this.foreign.get(m.name)
      if (agg === undefined) {
        agg = { name: m.name, help: m.help, type: m.type, values: [] }
        this.foreign.set(m.name, agg)
      } else if (agg.type !== m.type) {
        this.onMismatch(m.name)
        continue
      }
      for (const v of m.values) agg.values.push({ metricName: v.metricName, labels: { pid: pidText, ...v.labels }, value: v.value })
    }
  }

  /**
   * The counters and histograms as snapshot families (for the archive); histogram sums as their
   * exact partials, so that merging into the archive loses nothing.
   */
  toSnapshots (): FamilySnapshot[] {
    const out: FamilySnapshot[] = []
    for (const agg of this.families.values()) {
      if (agg.type === 'gauge') continue
      const snap = familySnapshot(agg.family, undefined, undefined)
      if (agg.sums !== undefined) {
        const n = agg.labelNames.length
        let i = 0
        for (const h of agg.family.entries() as Iterable<HistogramSeries>) {
          const partials = agg.sums.get(h)
          if (partials !== undefined) snap.series[i][n] = partials.length === 1 ? partials[0] : partials.length === 0 ? 0 : [...partials]
          i++
        }
      }
      out.push(snap)
    }
    return out
  }

  /** Sets every histogram series' `_sum` to the correctly rounded exact sum. */
  private finish (): void {
    for (const agg of this.families.values()) {
      if (agg.sums === undefined) continue
      for (const [h, partials] of agg.sums) h.sum = exactValue(partials)
    }
  }

  /** A registry holding the aggregate, for `renderRegistry`. */
  toRegistry (defaultLabels: Record<string, string> | undefined): Registry {
    this.finish()
    const registry = new Registry()
    if (defaultLabels !== undefined && Object.keys(defaultLabels).length > 0) registry.setDefaultLabels(defaultLabels)
    for (const agg of this.families.values()) registry.registerMetric(agg.family as never)
    for (const f of this.foreign.values()) {
      if (this.families.has(f.name)) continue
      const metric = { name: f.name, help: f.help, type: f.type, aggregator: 'sum', values: f.values }
      registry.registerMetric({ name: f.name, help: f.help, type: f.type, aggregator: 'sum', get: async () => metric } as never)
    }
    return registry
  }
}

/** Values handed over to the archive already, per family and label key (see `release`). */
type Baseline = Map<string, Map<string, readonly number[]>>

/** A family's series as a snapshot; counters and histograms less the baseline, if any. */
function familySnapshot (family: MetricFamily<unknown>, mode: GaugeMode | undefined, baseline: Map<string, readonly number[]> | undefined): FamilySnapshot {
  const type = family.type
  const labelNames = [...family.labelNames]
  const series: FamilySnapshot['series'] = []
  const snap: FamilySnapshot = { name: family.name, type, help: family.help, labelNames, series }
  if (type === 'histogram') snap.buckets = Array.from((family as HistogramFamily).upperBounds)
  if (type === 'gauge') snap.mode = mode ?? 'sum'
  for (const s of family.entries() as Iterable<CounterSeries | GaugeSeries | HistogramSeries>) {
    const row: Array<string | number> = []
    for (const name of labelNames) row.push(s.labels[name])
    const base = baseline?.get(row.join('\u0000'))
    if (type === 'histogram') {
      const h = s as HistogramSeries
      row.push(h.sum - (base?.[0] ?? 0), h.count - (base?.[1] ?? 0))
      const counts = h.counts
      for (let i = 0; i < counts.length; i++) row.push(counts[i] - (base?.[2 + i] ?? 0))
      // Trailing empty buckets are left out (readers take a missing count as 0): most
      // observations sit in the low buckets, and this keeps the files small and quick to parse.
      while (row.length > labelNames.length + 2 && row[row.length - 1] === 0) row.pop()
    } else {
      row.push((s as CounterSeries).value - (type === 'counter' ? (base?.[0] ?? 0) : 0))
    }
    series.push(row)
  }
  return snap
}

/** The raw numbers of the counters and histograms of a snapshot, by family and label key. */
function baselineOf (families: readonly FamilySnapshot[], previous: Baseline | undefined): Baseline {
  const out: Baseline = new Map()
  for (const f of families) {
    if (f.type === 'gauge') continue
    const n = f.labelNames.length
    const prev = previous?.get(f.name)
    const m = new Map<string, readonly number[]>()
    for (const s of f.series) {
      const key = s.slice(0, n).join('\u0000')
      const nums = s.slice(n).map(num)
      const p = prev?.get(key)
      m.set(key, p === undefined ? nums : Array.from({ length: Math.max(nums.length, p.length) }, (_, i) => (nums[i] ?? 0) + (p[i] ?? 0)))
    }
    if (prev !== undefined) for (const [k, v] of prev) if (!m.has(k)) m.set(k, v)
    out.set(f.name, m)
  }
  if (previous !== undefined) for (const [k, v] of previous) if (!out.has(k)) out.set(k, v)
  return out
}

// ---------------------------------------------------------------------------------------------
// The store

/** What a store needs. */
export interface StoreOptions {
  registry: Registry
  config: MultiprocessConfig
  prefix: string
  /** Told about every failure inside the store (never thrown into the app). */
  onError: (component: string, err: unknown) => void
  /** This process's histogram buckets: a scrape renders every histogram with them. */
  buckets?: { readonly latency: readonly number[], readonly size: readonly number[] }
}

const STORES = new WeakMap<Registry, MultiprocessStore>()
/** Counters and histograms a closed store handed over, so a later store of the registry does not count them again. */
const HANDED_OVER = new WeakMap<Registry, Baseline>()
const OPEN = new Set<MultiprocessStore>()
const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
let handlersInstalled = false

function onProcessExit (): void {
  for (const store of [...OPEN]) store.finalizeSync()
}

/**
 * Listeners of a signal that, like ours, only clean up and let the signal end the process:
 * signal-exit's (v3 and v4; used by test runners and coverage tools), which defers to any other
 * listener the same way. Counting them avoids each waiting for the other.
 */
function politeListeners (): number {
  const g = globalThis as unknown as Record<symbol, { count?: unknown } | undefined>
  const v4 = g[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  return 1 + (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
}

function onSignal (signal: NodeJS.Signals): void {
  // Another listener means the application handles the signal: it decides when to exit, and the
  // 'exit' event hands the totals over then. Alone, we hand them over now and let the signal do
  // what it would have done without us.
  if (process.listenerCount(signal) > politeListeners()) return
  onProcessExit()
  uninstallHandlers()
  process.kill(process.pid, signal)
}

function installHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', onProcessExit)
  for (const s of SIGNALS) process.on(s, onSignal)
}

function uninstallHandlers (): void {
  if (!handlersInstalled) return
  handlersInstalled = false
  process.removeListener('exit', onProcessExit)
  for (const s of SIGNALS) process.removeListener(s, onSignal)
}

class ReadError extends Error {}

/**
 * The shared-directory store of one registry in one process. Get it with `acquire()` (one per
 * registry, reference-counted), give it back with `release()`.
 */
export class MultiprocessStore {
  readonly dir: string
  readonly intervalMs: number
  readonly id: string
  readonly file: string
  private readonly registry: Registry
  private readonly onError: (component: string, err: unknown) => void
  private readonly gaugeModes = new Map<string, GaugeMode>()
  private readonly bounds = new Map<string, readonly number[]>()
  private readonly host = hostId()
  private readonly pstart = ownStart()
  private readonly startedAt = Date.now()
  private readonly baseline: Baseline | undefined
  private refs = 0
  private seq = 0
  private tmpSeq = 0
  private timer: NodeJS.Timeout | undefined
  private chain: Promise<unknown> = Promise.resolve()
  private busy = false
  private closed = false

  private constructor (opts: StoreOptions) {
    this.registry = opts.registry
    this.dir = opts.config.dir
    this.intervalMs = opts.config.flushIntervalMs
    this.onError = opts.onError
    this.id = `${this.host}-${process.pid}-${this.pstart}-${randomBytes(6).toString('hex')}`
    this.file = join(this.dir, `fnm-${this.id}.json`)
    this.baseline = HANDED_OVER.get(opts.registry)
    for (const key of Object.keys(CATALOGUE) as FamilyKey[]) {
      const spec: { type: string, name: string, buckets?: 'latency' | 'size' } = CATALOGUE[key]
      if (spec.type === 'gauge') this.gaugeModes.set(opts.prefix + spec.name, GAUGE_MODES[key] ?? 'sum')
      if (spec.type === 'histogram' && opts.buckets !== undefined) this.bounds.set(opts.prefix + spec.name, opts.buckets[spec.buckets ?? 'latency'])
    }
  }

  /**
   * The store of a registry, created (and the directory checked) on first use.
   * @throws FNM_ERR_MULTIPROCESS_DIR when the directory is missing or not writable
   */
  static acquire (opts: StoreOptions): MultiprocessStore {
    let store = STORES.get(opts.registry)
    if (store === undefined || store.closed) {
      checkDirectory(opts.config)
      store = new MultiprocessStore(opts)
      STORES.set(opts.registry, store)
      store.open()
    }
    store.refs++
    return store
  }

  private open (): void {
    OPEN.add(this)
    installHandlers()
    // A first file at once, so that the process is seen before its first interval.
    try {
      this.writeSync(this.snapshotSync(false))
    } catch (err) {
      this.onError('multiprocess', err)
    }
    this.maintain()
    this.timer = setInterval(() => { this.tick() }, this.intervalMs)
    this.timer.unref()
  }

  private tick (): void {
    if (this.busy || this.closed) return
    this.busy = true
    this.flush(false).then(() => { this.maintain() }, (err) => { this.onError('multiprocess', err) }).finally(() => { this.busy = false })
  }

  /**
   * Gives the store back. The last holder closes it: a final snapshot is written and handed over
   * to the archive at once (when the lock is free; otherwise the next live process does it after
   * this one has exited).
   */
  async release (): Promise<void> {
    if (--this.refs > 0 || this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    OPEN.delete(this)
    if (OPEN.size === 0) uninstallHandlers()
    await this.chain.catch(() => {})
    try {
      const snap = this.snapshotSync(true)
      this.writeSync(snap)
      HANDED_OVER.set(this.registry, baselineOf(snap.families, this.baseline))
      for (let attempt = 0; attempt < 20; attempt++) {
        if (this.maintain(true)) break
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    } catch (err) {
      this.onError('multiprocess', err)
    }
  }

  /** At process exit (synchronous): the final snapshot, for the other processes to merge. */
  finalizeSync (): void {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    OPEN.delete(this)
    try {
      this.writeSync(this.snapshotSync(true))
    } catch {
      // Exiting: nothing to report to. The last periodic snapshot stays.
    }
  }

  // ----- snapshots

  private familySnapshots (): FamilySnapshot[] {
    const out: FamilySnapshot[] = []
    for (const m of this.registry.getMetricsAsArray() as unknown[]) {
      if (!isMetricFamily(m)) continue
      out.push(familySnapshot(m, this.gaugeModes.get(m.name), this.baseline?.get(m.name)))
    }
    return out
  }

  private snapshotSync (final: boolean, foreign: ForeignSnapshot[] = []): ProcessSnapshot {
    return {
      format: FORMAT,
      v: VERSION,
      host: this.host,
      pid: process.pid,
      pstart: this.pstart,
      id: this.id,
      startedAt: this.startedAt,
      heartbeat: Date.now(),
      intervalMs: this.intervalMs,
      seq: this.seq++,
      final,
      families: this.familySnapshots(),
      foreign
    }
  }

  /**
   * Runs the scrape-time collectors (all of them for a scrape; on the timer only those of the
   * summed and deduplicated gauges, which are cheap), reads the foreign metrics, then takes the
   * snapshot of our families synchronously, so that it is one point in time.
   */
  private async snapshot (forScrape: boolean, onCollectError: CollectErrorHandler | undefined): Promise<ProcessSnapshot> {
    const metrics = this.registry.getMetricsAsArray() as unknown[]
    const foreign: ForeignSnapshot[] = []
    await Promise.all(metrics.map(async (m) => {
      const name = (m as { name?: string }).name ?? '(unnamed)'
      try {
        if (isMetricFamily(m)) {
          if (m.collect !== undefined && (forScrape || (m.type === 'gauge' && this.gaugeModes.get(m.name) !== 'latest'))) await m.prepare()
          return
        }
        const got = await (m as { get: () => Promise<MetricObjectWithValues<MetricValue<string>>> }).get()
        foreign.push({
          name: got.name,
          help: got.help,
          type: String(got.type),
          values: (got.values ?? []).map((v) => {
            const o: ForeignSnapshot['values'][number] = { labels: { ...(v.labels as Record<string, string | number>) }, value: v.value }
            const metricName = (v as MetricValueWithName<string>).metricName
            if (metricName !== undefined) o.metricName = metricName
            return o
          })
        })
      } catch (err) {
        if (onCollectError !== undefined) onCollectError(name, err)
        else this.onError('collector', err)
      }
    }))
    return this.snapshotSync(false, foreign)
  }

  /** Takes a snapshot and writes it; writes are serialised, so the file only moves forward. */
  async flush (forScrape: boolean, onCollectError?: CollectErrorHandler): Promise<ProcessSnapshot> {
    const run = this.chain.then(async () => {
      const snap = await this.snapshot(forScrape, onCollectError)
      if (!this.closed) await this.write(snap)
      return snap
    })
    this.chain = run.catch(() => {})
    return await run
  }

  private tmpName (): string {
    return join(this.dir, `${TMP_PREFIX}${this.id}-${this.tmpSeq++}`)
  }

  private async write (snap: ProcessSnapshot): Promise<void> {
    const tmp = this.tmpName()
    try {
      await writeFile(tmp, JSON.stringify(snap))
      await rename(tmp, this.file)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  private writeSync (snap: ProcessSnapshot | ArchiveSnapshot, path = this.file): void {
    const tmp = this.tmpName()
    try {
      writeFileSync(tmp, JSON.stringify(snap))
      renameSync(tmp, path)
    } catch (err) {
      try { unlinkSync(tmp) } catch {}
      throw err
    }
  }

  // ----- scrape

  /**
   * The exposition of every process sharing the directory. Order matters for exactness: this
   * process's snapshot is written first (so a later scrape of another process sees at least what
   * this one reports), then the other process files are read, then the archive, and a file whose
   * id the archive lists is skipped (it was merged while we read).
   */
  async render (format: ExpositionFormat, onCollectError?: CollectErrorHandler): Promise<string> {
    const own = await this.flush(true, onCollectError)
    const names = await readdir(this.dir)
    const files = await Promise.all(names.filter((n) => PROCESS_FILE.test(n) && n !== `fnm-${this.id}.json`).map(async (n) => await this.readJson<ProcessSnapshot>(n)))
    const archive = await this.readJson<ArchiveSnapshot>(ARCHIVE_FILE)
    const merged = archive?.merged ?? {}
    const agg = new Aggregate((name) => { this.onError('multiprocess', new Error(`metric '${name}' has another type or other labels in another process; left out`)) }, false, this.bounds)
    agg.addFamilies(own.families, 'local', own.heartbeat)
    agg.addForeign(own.foreign, own.pid)
    const now = Date.now()
    for (const f of files) {
      if (f === undefined || merged[f.id] !== undefined) continue
      const live = this.isLive(f, now)
      agg.addFamilies(f.families, live ? 'live' : 'dead', f.heartbeat)
      if (live) agg.addForeign(f.foreign ?? [], f.pid)
    }
    if (archive !== undefined) agg.addFamilies(archive.families, 'dead', 0)
    const defaults = (this.registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels
    return await renderRegistry(agg.toRegistry(defaults), format, onCollectError)
  }

  /** Gauges of a process count while it runs and its heartbeat is fresh. */
  private isLive (f: ProcessSnapshot, now: number): boolean {
    if (f.final) return false
    if (now - f.heartbeat > Math.max(5 * (f.intervalMs ?? this.intervalMs), 10_000)) return false
    return f.host !== this.host || processAlive(f.pid, f.pstart)
  }

  /** A file's parsed content; undefined when it is gone (merged meanwhile) or unreadable (reported). */
  private async readJson<T extends { format?: string }> (name: string): Promise<T | undefined> {
    let text: string
    try {
      text = await readFile(join(this.dir, name), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    try {
      const parsed = JSON.parse(text) as T
      if (parsed.format !== FORMAT && parsed.format !== `${FORMAT}/archive`) throw new ReadError(`not a ${FORMAT} file`)
      return parsed
    } catch (err) {
      this.onError('multiprocess', new ReadError(`${name}: ${(err as Error).message}`))
      return undefined
    }
  }

  // ----- merging dead processes into the archive

  /**
   * Merges the files of dead processes of this host (and, with `self`, this closed store's own
   * file) into the archive, then removes them; removes temporary files of dead processes.
   * Synchronous, so no other work of this process interleaves. Returns false when the lock was
   * held by a live process (try again later).
   */
  maintain (self = false): boolean {
    try {
      const names = readdirSync(this.dir)
      const dead: string[] = []
      const tmps: string[] = []
      for (const n of names) {
        const m = PROCESS_FILE.exec(n)
        if (m !== null) {
          if (n === `fnm-${this.id}.json`) { if (self) dead.push(n); continue }
          if (m[1] === this.host && !processAlive(Number(m[2]), m[3])) dead.push(n)
          continue
        }
        const t = TMP_FILE.exec(n)
        if (t !== null && t[1] === this.host && !processAlive(Number(t[2]), t[3])) tmps.push(n)
      }
      for (const n of tmps) { try { unlinkSync(join(this.dir, n)) } catch {} }
      if (dead.length === 0) return true
      if (!this.lock()) return false
      try {
        this.mergeLocked(dead)
      } finally {
        this.unlock()
      }
      return true
    } catch (err) {
      this.onError('multiprocess', err)
      return true
    }
  }

  private mergeLocked (dead: string[]): void {
    const now = Date.now()
    const archivePath = join(this.dir, ARCHIVE_FILE)
    let archive: ArchiveSnapshot | undefined
    try {
      archive = JSON.parse(readFileSync(archivePath, 'utf8')) as ArchiveSnapshot
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const merged: Record<string, number> = { ...(archive?.merged ?? {}) }
    const agg = new Aggregate(() => { this.onError('multiprocess', new Error('a dead process file disagrees with the archive on a metric\'s type or labels; that metric is left out')) }, true)
    if (archive !== undefined) agg.addFamilies(archive.families, 'dead', 0)
    const done: string[] = []
    let changed = false
    for (const n of dead) {
      const id = n.slice(4, -5)
      done.push(n)
      if (merged[id] !== undefined) continue // merged before a crash, not yet removed
      let snap: ProcessSnapshot
      try {
        snap = JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as ProcessSnapshot
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') { done.pop(); continue }
        this.onError('multiprocess', new ReadError(`${n}: ${(err as Error).message}; removed`))
        continue
      }
      agg.addFamilies(snap.families, 'dead', 0)
      merged[id] = now
      changed = true
    }
    for (const id of Object.keys(merged)) {
      if (now - merged[id] < MERGED_ID_TTL_MS) continue
      let exists = true
      try { statSync(join(this.dir, `fnm-${id}.json`)) } catch { exists = false }
      if (!exists) { delete merged[id]; changed = true }
    }
    if (changed) this.writeSync({ format: `${FORMAT}/archive`, v: VERSION, merged, families: agg.toSnapshots() }, archivePath)
    for (const n of done) { try { unlinkSync(join(this.dir, n)) } catch {} }
  }

  private lockContent (): string {
    return JSON.stringify({ host: this.host, pid: process.pid, pstart: this.pstart, id: this.id, at: Date.now() })
  }

  /** Takes the archive lock (an O_EXCL file), breaking it when its holder is dead. */
  private lock (): boolean {
    const path = join(this.dir, LOCK_FILE)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx')
        try { writeSync(fd, this.lockContent()) } finally { closeSync(fd) }
        return true
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      if (!this.breakStaleLock(path)) return false
    }
    return false
  }

  private lockIsStale (path: string): string | undefined {
    let text: string
    let age: number
    try {
      text = readFileSync(path, 'utf8')
      age = Date.now() - statSync(path).mtimeMs
    } catch {
      return undefined
    }
    let holder: { host?: string, pid?: number, pstart?: string } | undefined
    try { holder = JSON.parse(text) } catch {}
    if (holder === undefined || typeof holder.pid !== 'number') return age > STALE_BREAKER_MS ? text : undefined
    if (holder.host === this.host) return processAlive(holder.pid, String(holder.pstart ?? '0')) ? undefined : text
    return age > STALE_FOREIGN_LOCK_MS ? text : undefined
  }

  /**
   * Removes a lock left by a dead process. Breaking happens under a second O_EXCL file and
   * re-checks the lock's content, so two processes never both break the lock and both take it.
   */
  private breakStaleLock (path: string): boolean {
    const stale = this.lockIsStale(path)
    if (stale === undefined) return false
    const breaker = join(this.dir, BREAKER_FILE)
    try {
      closeSync(openSync(breaker, 'wx'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      try { if (Date.now() - statSync(breaker).mtimeMs > STALE_BREAKER_MS) unlinkSync(breaker) } catch {}
      return false
    }
    try {
      let current: string | undefined
      try { current = readFileSync(path, 'utf8') } catch {}
      if (current === stale) unlinkSync(path)
      return true
    } finally {
      try { unlinkSync(breaker) } catch {}
    }
  }

  private unlock (): void {
    const path = join(this.dir, LOCK_FILE)
    try {
      const holder = JSON.parse(readFileSync(path, 'utf8')) as { id?: string }
      if (holder.id === this.id) unlinkSync(path)
    } catch {}
  }
}
