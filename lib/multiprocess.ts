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
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Registry, type MetricObjectWithValues, type MetricValue, type MetricValueWithName } from 'prom-client'
import { FNM_ERR_MULTIPROCESS_DIR } from './errors'
import { renderRegistryBuffer, type CollectErrorHandler, type ExpositionFormat } from './exposition'
import { PB, type ProtoWriter } from './protobuf'
import { BaseSeries, CounterFamily, GaugeFamily, HistogramFamily, isMetricFamily, MetricFamily, type CounterSeries, type FamilyType, type GaugeSeries, type HistogramSeries } from './families'
import { CATALOGUE, NATIVE_FAMILIES, type FamilyKey } from './metrics'
import { isNativeSnapshot, MAX_SCHEMA, NativeBuckets, type NativeHistogramConfig, type NativeSnapshot } from './native'
import { kPoliteSignalListener } from './symbols'
import type { ExpositionWriter } from './writer'

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
  /** `summary`: an application's prom-client Summary, as its `_sum` and `_count` (no quantiles). */
  type: FamilyType | 'summary'
  help: string
  labelNames: string[]
  /** Gauges: how they combine. */
  mode?: GaugeMode
  /** Histograms: the finite upper bounds. */
  buckets?: number[]
  /**
   * counter, gauge: `[...labelValues, value]`; histogram: `[...labelValues, sum, count,
   * ...counts]` with non-cumulative counts, the last one for `+Inf`; trailing zero counts are
   * left out (a missing count is 0); summary: `[...labelValues, sum, count]`.
   */
  series: Array<Array<string | number | null | number[]>>
  /**
   * Histograms with native buckets: those of each series, in the order of `series` (`0` for a
   * series without; a series without them is carried over from its classic buckets), as
   * `NativeSnapshot`s whose zero threshold is `null` when it is `nativeZeroThreshold`.
   */
  native?: Array<Array<number | null> | 0>
  /** The zero threshold of the native buckets whose own is `null`. */
  nativeZeroThreshold?: number
  /**
   * Histograms with exemplars (process files only): each series' latest exemplar per classic
   * bucket, `[bucket index, trace id, span id, value, timestamp ms]`, in the order of `series`.
   */
  exemplars?: Array<ExemplarSnapshot[] | 0>
}

/** One exemplar in a snapshot: `[classic bucket index, trace id, span id, value, timestamp ms]`. */
export type ExemplarSnapshot = [number, string, string, number, number]

/**
 * A metric of a live process only, one series per process with a `pid` label: `process`,
 * prom-client's default metrics (`process_*`, `nodejs_*`; one value per process, however many
 * registries report it); `gauge`, the application's own gauges (summed over the registries of
 * the process).
 */
export interface ForeignSnapshot {
  name: string
  help: string
  type: string
  /** Absent in files of earlier versions: `process`. */
  kind?: 'process' | 'gauge'
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

/** A short text of a `/proc` file, or `''` where there is none. */
function procText (read: () => string): string {
  try { return read().trim() } catch { return '' }
}

let hostHash: string | undefined
/**
 * This process's node id: 8 hex digits of a hash of the host name, the boot id
 * (`/proc/sys/kernel/random/boot_id`) and the pid namespace (`/proc/self/ns/pid`). Two processes
 * with the same node id see the same process table, so one can ask whether the other runs
 * (`kill(pid, 0)` and `/proc/<pid>/stat`); processes of other nodes (another container with its
 * own pid namespace, another boot, another host) are judged by their heartbeat only.
 */
export function hostId (): string {
  hostHash ??= createHash('sha1')
    .update(`${hostname()}\u0000${procText(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1'))}\u0000${procText(() => readlinkSync('/proc/self/ns/pid'))}`)
    .digest('hex').slice(0, 8)
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
  type: FamilySnapshot['type']
  mode: GaugeMode
  labelNames: string[]
  bounds?: number[]
  /** `latest` gauges: the heartbeat of the source of each series' value. */
  freshness?: Map<unknown, number>
  /** Histograms: the exact partials of each series' `_sum`. */
  sums?: Map<HistogramSeries | SummarySeries, number[]>
  /** Histograms: what each series' native buckets are made of, merged once every file is read. */
  nativeParts?: Map<HistogramSeries, NativePart[]>
  /** Archive histograms: the native buckets of each series that has any (from `nativeParts`). */
  natives?: Map<HistogramSeries, NativeBuckets>
  /** Each series with its `_sum` partials, by the label values joined (see `slot`). */
  index: Map<string, Slot>
}

/** A series of an aggregate family, found by its label values. */
interface Slot {
  series: unknown
  partials: number[]
}

/** One foreign metric: its samples by process key (`process` kind: the freshest source's). */
interface AggForeign {
  name: string
  help: string
  type: string
  kind: 'process' | 'gauge' | 'local'
  byProcess: Map<string, { pid: number, heartbeat: number, values: ForeignSnapshot['values'] }>
}

/** Where a snapshot comes from, which decides what of it counts. */
type SourceKind = 'local' | 'live' | 'dead'

/**
 * The native buckets of row `r` of a family snapshot, its zero threshold filled in from the
 * family's (in place: a file is read once); undefined when it has none or they are malformed.
 */
function nativeRow (f: FamilySnapshot, r: number): NativeSnapshot | undefined {
  const ns = Array.isArray(f.native) ? f.native[r] : undefined
  if (!Array.isArray(ns)) return undefined
  if (ns[1] === null) ns[1] = typeof f.nativeZeroThreshold === 'number' ? f.nativeZeroThreshold : NaN
  return isNativeSnapshot(ns) ? ns : undefined
}

/** A snapshot as written: its zero threshold `null` when it is the family's. */
function withSharedZeroThreshold (snap: NativeSnapshot, shared: number | undefined): Array<number | null> {
  const row: Array<number | null> = snap
  if (snap[1] === shared) row[1] = null
  return row
}

/** One source of a series' native buckets: its native snapshot, or its classic counts (`row[start + i]`). */
type NativePart = NativeSnapshot | { bounds: readonly number[], row: ReadonlyArray<unknown>, start: number }

/**
 * Native buckets for the archive (and a hand-over's baseline), with the zero threshold of
 * their first source: as fine as any source (each merge reduces them to the source's schema),
 * never reduced for their number.
 */
function archiveNative (zeroThreshold: number): NativeBuckets {
  return new NativeBuckets({ bucketFactor: 1, schema: MAX_SCHEMA, maxBuckets: 2 ** 20, zeroThreshold, classic: true })
}

/**
 * Carries classic bucket counts (non-cumulative, `counts[start + i]` for bound i, the last for
 * `+Inf`) over to native buckets, for a source that has none (a process or archive of before
 * native histograms were turned on): each count goes to the native bucket holding its classic
 * bucket's upper bound, the `+Inf` count to the one just above the highest bound. So `_count`
 * and the native buckets agree, the placement is the same at every scrape (a bucket never goes
 * down), and a quantile is at worst as coarse as the classic buckets made it.
 */
function addClassicAsNative (nb: NativeBuckets, bounds: readonly number[], counts: ArrayLike<unknown>, start: number): void {
  for (let i = 0; i <= bounds.length; i++) {
    const c = num(counts[start + i])
    if (c <= 0) continue
    nb.addValue(i < bounds.length ? bounds[i] : above(bounds[bounds.length - 1]), c)
  }
}

/** A value just above a classic histogram's highest bound (its `+Inf` bucket's stand-in). */
function above (b: number | undefined): number {
  if (b === undefined || !Number.isFinite(b)) return Number.MAX_VALUE
  return b > 0 ? b * (1 + 2 ** -52) : b < 0 ? b * (1 - 2 ** -53) : Number.MIN_VALUE
}

/** Keeps the latest exemplar of each classic bucket of `h` (placed by its value: layouts may differ). */
function addExemplars (h: HistogramSeries, list: readonly unknown[]): void {
  for (const e of list) {
    if (!Array.isArray(e) || e.length !== 5) continue
    const [, traceId, spanId, value, timestampMs] = e as unknown[]
    if (typeof traceId !== 'string' || typeof spanId !== 'string' || typeof value !== 'number' || typeof timestampMs !== 'number') continue
    const bounds = h.upperBounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    h.exemplars ??= new Array(h.counts.length).fill(undefined)
    const prev = h.exemplars[i]
    if (prev === undefined || timestampMs > prev.timestampMs) h.exemplars[i] = { traceId, spanId, value, timestampMs }
  }
}

/** One series of an application's prom-client Summary in multiprocess mode: `_sum` and `_count`. */
class SummarySeries extends BaseSeries {
  sum = 0
  count = 0
}

/**
 * An application's prom-client Summary summed over processes: `_sum` and `_count` only
 * (quantiles cannot be combined, as with prometheus_client's multiprocess mode).
 */
class SummaryFamily extends MetricFamily<SummarySeries> {
  readonly type = 'summary' as unknown as FamilyType
  protected create (values: readonly string[]): SummarySeries {
    return new SummarySeries(this.labelNames, values)
  }

  protected values (): Array<MetricValue<string>> {
    const out: Array<MetricValueWithName<string>> = []
    for (const s of this.entries()) {
      out.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      out.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count })
    }
    return out
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity): void {
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      const labels = s.labelText === '' ? '' : `{${s.labelText}}`
      w.text(`${sampleName}_sum${labels} `)
      w.number(s.sum)
      w.text(`\n${sampleName}_count${labels} `)
      w.number(s.count)
      w.text('\n')
    }
  }

  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      const metric = w.begin(PB.family.metric)
      w.raw(s.protoLabels)
      const at = w.begin(PB.metric.summary)
      w.uint(PB.summary.count, s.count)
      w.double(PB.summary.sum, s.sum)
      w.end(at)
      w.end(metric)
    }
  }
}

/**
 * Sums snapshots into lean families. Counters, histograms and summaries are added from every
 * source; gauges from local and live ones only, by their mode; foreign metrics from local and
 * live ones, one series per process with a `pid` label. The first snapshot of a family decides
 * its help, label names and buckets; a later one with other label names or another type is left
 * out (and reported).
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
   * @param preferredNative the scraping process's native histogram settings, by family name: a
   *   scrape renders native buckets for these families (merged from every source) and for no
   *   other. The archive keeps the native buckets of each series that has any, as they are.
   */
  constructor (private readonly onMismatch: (name: string) => void, private readonly keepLayouts = false, private readonly preferredBounds?: ReadonlyMap<string, readonly number[]>, private readonly preferredNative?: ReadonlyMap<string, NativeHistogramConfig>) {}

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
        : f.type === 'gauge'
          ? new GaugeFamily(config)
          : f.type === 'summary' ? new SummaryFamily(config) : new HistogramFamily({ ...config, buckets: bounds ?? [], native: this.keepLayouts ? null : this.preferredNative?.get(f.name) ?? null })
      agg = { family, type: f.type, mode: f.mode ?? 'sum', labelNames: f.labelNames, bounds, index: new Map() }
      if (agg.mode === 'latest') agg.freshness = new Map()
      if (f.type === 'histogram' || f.type === 'summary') agg.sums = new Map()
      this.families.set(key, agg)
    } else if (agg.type !== f.type || !sameArray(agg.labelNames, f.labelNames)) {
      this.onMismatch(f.name)
      return
    }
    const n = f.labelNames.length
    if (agg.type === 'counter') {
      for (const s of f.series) (this.slot(agg, s, n).series as CounterSeries).value += num(s[n])
    } else if (agg.type === 'gauge') {
      for (const s of f.series) {
        const g = this.slot(agg, s, n).series as GaugeSeries
        const v = typeof s[n] === 'number' ? s[n] as number : NaN
        if (agg.mode === 'sum') g.value += v
        else if (agg.mode === 'max') g.value = g.value === 0 ? v : Math.max(g.value, v)
        else {
          const at = kind === 'local' ? Infinity : heartbeat
          const fresh = agg.freshness as Map<unknown, number>
          if ((fresh.get(g) ?? -1) < at) { fresh.set(g, at); g.value = v }
        }
      }
    } else if (agg.type === 'summary') {
      for (const s of f.series) {
        const slot = this.slot(agg, s, n)
        const h = slot.series as SummarySeries
        addSum(slot.partials, s[n])
        h.count += num(s[n + 1])
      }
    } else {
      const same = f.buckets !== undefined && agg.bounds !== undefined && sameArray(f.buckets, agg.bounds)
      // Exemplars are of now: from running processes only.
      const exemplars = kind !== 'dead' && Array.isArray(f.exemplars) ? f.exemplars : undefined
      for (let r = 0; r < f.series.length; r++) {
        const s = f.series[r]
        const slot = this.slot(agg, s, n)
        const h = slot.series as HistogramSeries
        if (this.keepLayouts || h.native != null) {
          const ns = nativeRow(f, r)
          agg.nativeParts ??= new Map()
          let parts = agg.nativeParts.get(h)
          if (parts === undefined) agg.nativeParts.set(h, parts = [])
          parts.push(ns ?? { bounds: f.buckets ?? [], row: s, start: n + 2 })
        }
        const ex = exemplars?.[r]
        if (Array.isArray(ex)) addExemplars(h, ex)
        addSum(slot.partials, s[n])
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

  /**
   * Merges the native buckets of every histogram series from its parts, once all are known: a
   * scrape, into the series' own when the scraping process renders native buckets for the
   * family; the archive, into new ones for each series of which any source had native buckets.
   * Native snapshots first (the coarsest schema is reached soonest), then the classic counts of
   * sources without (`addClassicAsNative`); with every zero threshold given first, the result
   * does not depend on the order of the files.
   */
  private mergeNatives (agg: AggFamily): void {
    if (agg.nativeParts === undefined) return
    for (const [h, parts] of agg.nativeParts) {
      const snaps = parts.filter((p): p is NativeSnapshot => Array.isArray(p))
      let nb = h.native ?? null
      if (this.keepLayouts) {
        if (snaps.length === 0) continue
        nb = archiveNative(snaps[0][1])
        agg.natives ??= new Map()
        agg.natives.set(h, nb)
      }
      if (nb === null) continue
      nb.reconcileZero(snaps.map((p) => p[1]))
      nb.mergeSnapshots(snaps)
      for (const p of parts) if (!Array.isArray(p)) addClassicAsNative(nb, p.bounds, p.row, p.start)
    }
    agg.nativeParts = undefined
  }

  /**
   * The series of a snapshot row (its first `n` values are the labels), created on first use.
   * Looked up by the label values joined, without the copies `child(...labels)` needs: a
   * scrape does this for every series of every file.
   */
  private slot (agg: AggFamily, row: ReadonlyArray<unknown>, n: number): Slot {
    let key = n === 0 ? '' : String(row[0])
    for (let i = 1; i < n; i++) key += '\u0000' + String(row[i])
    let slot = agg.index.get(key)
    if (slot === undefined) {
      const series = agg.family.child(...(row.slice(0, n) as string[]))
      slot = { series, partials: [] }
      agg.sums?.set(series as HistogramSeries, slot.partials)
      agg.index.set(key, slot)
    }
    return slot
  }

  /**
   * Adds the foreign metrics of one process. `process` metrics keep one value per process (the
   * freshest registry's: two registries of one process report the same process); `gauge` ones
   * are summed over the registries of the process; `local` ones (the scraping process's
   * scrape-time metrics) are rendered as they are, without a `pid` label.
   */
  addForeign (foreign: readonly ForeignSnapshot[], processKey: string, pid: number, heartbeat: number, local = false): void {
    for (const m of foreign) {
      const kind = local ? 'local' : m.kind ?? 'process'
      let agg = this.foreign.get(m.name)
      if (agg === undefined) {
        agg = { name: m.name, help: m.help, type: m.type, kind, byProcess: new Map() }
        this.foreign.set(m.name, agg)
      } else if (agg.type !== m.type || agg.kind !== kind) {
        this.onMismatch(m.name)
        continue
      }
      const prev = agg.byProcess.get(processKey)
      if (prev === undefined) agg.byProcess.set(processKey, { pid, heartbeat, values: m.values })
      else if (kind === 'gauge' || kind === 'local') prev.values = prev.values.concat(m.values)
      else if (heartbeat > prev.heartbeat) agg.byProcess.set(processKey, { pid, heartbeat, values: m.values })
    }
  }

  /**
   * The `pid` label of each process. Two live processes with one pid (containers with their own
   * pid namespaces) are told apart by their node id: `pid="1@0a7c9cdf"`.
   */
  private pidLabels (): Map<string, string> {
    const pids = new Map<number, Set<string>>()
    for (const f of this.foreign.values()) {
      for (const [key, p] of f.byProcess) {
        let keys = pids.get(p.pid)
        if (keys === undefined) { keys = new Set(); pids.set(p.pid, keys) }
        keys.add(key)
      }
    }
    const out = new Map<string, string>()
    for (const [pid, keys] of pids) for (const key of keys) out.set(key, keys.size === 1 ? String(pid) : `${pid}@${key.slice(0, key.indexOf('-'))}`)
    return out
  }

  /** A foreign metric's samples with their `pid` labels; same series of one process summed. */
  private foreignValues (f: AggForeign, pidLabels: ReadonlyMap<string, string>): ForeignSnapshot['values'] {
    const out: ForeignSnapshot['values'] = []
    for (const [key, p] of f.byProcess) {
      const extra = f.kind === 'local' ? undefined : pidLabels.get(key)
      if (f.kind === 'process' || f.kind === 'local') {
        for (const v of p.values) out.push({ metricName: v.metricName, labels: extra === undefined ? v.labels : { pid: extra, ...v.labels }, value: v.value })
        continue
      }
      const summed = new Map<string, ForeignSnapshot['values'][number]>()
      for (const v of p.values) {
        const k = `${v.metricName ?? ''}\u0000${JSON.stringify(v.labels)}`
        const s = summed.get(k)
        if (s === undefined) summed.set(k, { metricName: v.metricName, labels: { pid: extra as string, ...v.labels }, value: v.value })
        else s.value += v.value
      }
      out.push(...summed.values())
    }
    return out
  }

  /**
   * The counters, histograms and summaries as snapshot families (for the archive); sums as
   * their exact partials, so that merging into the archive loses nothing.
   */
  toSnapshots (): FamilySnapshot[] {
    const out: FamilySnapshot[] = []
    for (const agg of this.families.values()) {
      if (agg.type === 'gauge') continue
      const snap = familySnapshot(agg.family, undefined)
      this.mergeNatives(agg)
      if (agg.natives !== undefined) {
        const natives = agg.natives
        const rows = Array.from(agg.family.entries() as Iterable<HistogramSeries>, (h) => natives.get(h)?.snapshot() ?? 0)
        const first = rows.find((x): x is NativeSnapshot => x !== 0)
        if (first !== undefined) snap.nativeZeroThreshold = first[1]
        snap.native = rows.map((x) => x === 0 ? 0 : withSharedZeroThreshold(x, snap.nativeZeroThreshold))
      }
      if (agg.sums !== undefined) {
        const n = agg.labelNames.length
        let i = 0
        for (const h of agg.family.entries() as Iterable<HistogramSeries | SummarySeries>) {
          const partials = agg.sums.get(h)
          if (partials !== undefined) snap.series[i][n] = partials.length === 1 ? partials[0] : partials.length === 0 ? 0 : [...partials]
          i++
        }
      }
      out.push(snap)
    }
    return out
  }

  /** Sets every histogram and summary series' `_sum` to the correctly rounded exact sum. */
  private finish (): void {
    for (const agg of this.families.values()) {
      this.mergeNatives(agg)
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
    const pidLabels = this.pidLabels()
    for (const f of this.foreign.values()) {
      if (this.families.has(f.name)) continue
      const metric = { name: f.name, help: f.help, type: f.type, aggregator: 'sum', values: this.foreignValues(f, pidLabels) }
      registry.registerMetric({ name: f.name, help: f.help, type: f.type, aggregator: 'sum', get: async () => metric } as never)
    }
    return registry
  }
}

/** Numbers of one series handed over already: its snapshot row's numbers, and its native buckets. */
interface Handed {
  nums: readonly number[]
  native?: NativeSnapshot
}

/** Values handed over to the archive already, per family and label key (see `release`). */
type Baseline = Map<string, Map<string, Handed>>

/** A family's series as a snapshot; counters, histograms and summaries less the baseline, if any. */
function familySnapshot (family: MetricFamily<unknown>, mode: GaugeMode | undefined, baseline?: Map<string, Handed>): FamilySnapshot {
  const type = family.type as FamilySnapshot['type']
  const labelNames = [...family.labelNames]
  const series: FamilySnapshot['series'] = []
  const snap: FamilySnapshot = { name: family.name, type, help: family.help, labelNames, series }
  if (type === 'histogram') snap.buckets = Array.from((family as HistogramFamily).upperBounds)
  if (type === 'gauge') snap.mode = mode ?? 'sum'
  const nativeConfig = type === 'histogram' ? (family as HistogramFamily).native : null
  const native: Array<Array<number | null> | 0> | undefined = nativeConfig != null ? [] : undefined
  let exemplars: Array<ExemplarSnapshot[] | 0> | undefined
  for (const s of family.entries() as Iterable<CounterSeries | GaugeSeries | HistogramSeries>) {
    const row: Array<string | number> = []
    for (const name of labelNames) row.push(s.labels[name])
    const base = baseline?.get(row.join('\u0000'))
    const nums = base?.nums
    if (type === 'histogram' || type === 'summary') {
      const h = s as HistogramSeries
      row.push(h.sum - (nums?.[0] ?? 0), h.count - (nums?.[1] ?? 0))
      if (type === 'histogram') {
        const counts = h.counts
        for (let i = 0; i < counts.length; i++) row.push(counts[i] - (nums?.[2 + i] ?? 0))
        // Trailing empty buckets are left out (readers take a missing count as 0): most
        // observations sit in the low buckets, and this keeps the files small and quick to parse.
        while (row.length > labelNames.length + 2 && row[row.length - 1] === 0) row.pop()
        if (native !== undefined) native.push(h.native != null ? withSharedZeroThreshold(h.native.snapshot(base?.native), nativeConfig?.zeroThreshold) : 0)
        if (h.exemplars != null) {
          exemplars ??= new Array(series.length).fill(0)
          const list: ExemplarSnapshot[] = []
          h.exemplars.forEach((e, i) => { if (e !== undefined) list.push([i, e.traceId, e.spanId, e.value, e.timestampMs]) })
          exemplars.push(list)
        } else if (exemplars !== undefined) exemplars.push(0)
      }
    } else {
      row.push((s as CounterSeries).value - (type === 'counter' ? (nums?.[0] ?? 0) : 0))
    }
    series.push(row)
  }
  if (native !== undefined) {
    snap.native = native
    snap.nativeZeroThreshold = nativeConfig?.zeroThreshold
  }
  if (exemplars !== undefined) snap.exemplars = exemplars
  return snap
}

/** The value of `get()` of a prom-client metric. */
type PromMetricValues = MetricObjectWithValues<MetricValue<string>>

/** The label names of an application metric: its declared ones, then any other its samples carry. */
function appLabelNames (metric: { labelNames?: unknown }, values: PromMetricValues['values'], skip: string): string[] {
  const names = Array.isArray(metric.labelNames) ? (metric.labelNames as unknown[]).filter((n): n is string => typeof n === 'string' && n !== skip) : []
  const extra = new Set<string>()
  for (const v of values) for (const k of Object.keys(v.labels ?? {})) if (k !== skip && !names.includes(k)) extra.add(k)
  return [...names, ...[...extra].sort()]
}

/**
 * An application's prom-client Counter, Histogram or Summary as a snapshot family, less the
 * baseline: summed over processes and archived like this package's own families. Histogram
 * buckets are made non-cumulative; a Summary keeps `_sum` and `_count`.
 */
export function appFamilySnapshot (metric: { labelNames?: unknown }, got: PromMetricValues, baseline?: Map<string, Handed>): FamilySnapshot {
  const type = String(got.type) as 'counter' | 'histogram' | 'summary'
  const values = got.values ?? []
  const skip = type === 'histogram' ? 'le' : type === 'summary' ? 'quantile' : ''
  const labelNames = appLabelNames(metric, values, skip)
  const snap: FamilySnapshot = { name: got.name, type, help: got.help, labelNames, series: [] }
  const rows = new Map<string, { labels: string[], nums: number[], cum: Array<[number, number]> }>()
  for (const v of values) {
    const labels = labelNames.map((n) => { const x = (v.labels as Record<string, unknown>)[n]; return x === undefined ? '' : String(x) })
    const key = labels.join('\u0000')
    let row = rows.get(key)
    if (row === undefined) { row = { labels, nums: type === 'counter' ? [0] : [0, 0], cum: [] }; rows.set(key, row) }
    const sample = (v as MetricValueWithName<string>).metricName ?? got.name
    if (type === 'counter') row.nums[0] += v.value
    else if (sample.endsWith('_sum')) row.nums[0] = v.value
    else if (sample.endsWith('_count')) row.nums[1] = v.value
    else if (type === 'histogram' && sample.endsWith('_bucket')) {
      const le = (v.labels as Record<string, unknown>).le
      row.cum.push([le === '+Inf' ? Infinity : Number(le), v.value])
    }
  }
  for (const row of rows.values()) {
    if (type === 'histogram') {
      row.cum.sort((x, y) => x[0] - y[0])
      snap.buckets ??= row.cum.filter(([b]) => Number.isFinite(b)).map(([b]) => b)
      let prev = 0
      for (const [, c] of row.cum) { row.nums.push(c - prev); prev = c }
    }
    const base = baseline?.get(row.labels.join('\u0000'))?.nums
    if (base !== undefined) for (let i = 0; i < row.nums.length; i++) row.nums[i] -= base[i] ?? 0
    while (type === 'histogram' && row.nums.length > 2 && row.nums[row.nums.length - 1] === 0) row.nums.pop()
    snap.series.push([...row.labels, ...row.nums])
  }
  if (type === 'histogram') snap.buckets ??= []
  return snap
}

/** The raw numbers of the counters and histograms of a snapshot, by family and label key. */
function baselineOf (families: readonly FamilySnapshot[], previous: Baseline | undefined): Baseline {
  const out: Baseline = new Map()
  for (const f of families) {
    if (f.type === 'gauge') continue
    const n = f.labelNames.length
    const prev = previous?.get(f.name)
    const m = new Map<string, Handed>()
    for (let r = 0; r < f.series.length; r++) {
      const s = f.series[r]
      const key = s.slice(0, n).join('\u0000')
      const nums = s.slice(n).map(num)
      const p = prev?.get(key)
      const handed: Handed = { nums: p === undefined ? nums : Array.from({ length: Math.max(nums.length, p.nums.length) }, (_, i) => (nums[i] ?? 0) + (p.nums[i] ?? 0)) }
      const native = nativeRow(f, r)
      if (native !== undefined) {
        if (p?.native === undefined) handed.native = native
        else {
          // The series' schema only goes down: the sum is exact at the newer snapshot's.
          const sum = archiveNative(p.native[1])
          sum.mergeSnapshot(p.native)
          sum.mergeSnapshot(native)
          handed.native = sum.snapshot()
        }
      } else if (p?.native !== undefined) handed.native = p.native
      m.set(key, handed)
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
  /** This process's native histogram settings: a scrape renders native buckets with them. */
  nativeHistograms?: NativeHistogramConfig | null
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
 * Listeners of a signal that, like ours, only clean up and let the signal end the process: ours
 * and those of other copies of this package (marked with a registered symbol), and
 * signal-exit's (v3 and v4; used by test runners and coverage tools), which defers to any other
 * listener the same way. Counting them avoids each waiting for the other.
 */
function politeListeners (signal: NodeJS.Signals): number {
  let ours = 0
  for (const l of process.listeners(signal)) if ((l as unknown as Record<symbol, unknown>)[kPoliteSignalListener] === true) ours++
  const g = globalThis as unknown as Record<symbol, { count?: unknown } | undefined>
  const v4 = g[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  return ours + (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
}

function onSignal (signal: NodeJS.Signals): void {
  // Another listener means the application handles the signal: it decides when to exit, and the
  // 'exit' event hands the totals over then. Alone, we hand them over now and let the signal do
  // what it would have done without us.
  if (process.listenerCount(signal) > politeListeners(signal)) return
  onProcessExit()
  uninstallHandlers()
  process.kill(process.pid, signal)
}
Object.defineProperty(onSignal, kPoliteSignalListener, { value: true })

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

/** Whether a parsed file has the shape of a snapshot (a torn or foreign file does not). */
function wellFormed (x: unknown, archive: boolean): boolean {
  const o = x as Partial<ProcessSnapshot & ArchiveSnapshot> | null
  if (o === null || typeof o !== 'object' || o.format !== (archive ? `${FORMAT}/archive` : FORMAT) || !Array.isArray(o.families)) return false
  if (archive ? (o.merged === null || typeof o.merged !== 'object') : typeof o.id !== 'string') return false
  return o.families.every((f) => f !== null && typeof f === 'object' && typeof f.name === 'string' && Array.isArray(f.labelNames) && Array.isArray(f.series) && f.series.every(Array.isArray))
}

/** Whether a process file holds a final snapshot, from its first bytes (`final` comes before the families). */
function isFinalFile (path: string): boolean {
  try {
    const fd = openSync(path, 'r')
    try {
      const buf = Buffer.alloc(512)
      const n = readSync(fd, buf, 0, buf.length, 0)
      return buf.toString('utf8', 0, n).includes('"final":true')
    } finally {
      closeSync(fd)
    }
  } catch {
    return false
  }
}

/** Writes `data` to `tmp`, optionally fsyncs it, and renames it to `path` (then fsyncs the directory). */
function writeAtomicSync (dir: string, tmp: string, path: string, data: string, durable: boolean): void {
  const fd = openSync(tmp, 'w')
  try {
    writeFileSync(fd, data)
    if (durable) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  if (durable) {
    try {
      const d = openSync(dir, 'r')
      try { fsyncSync(d) } finally { closeSync(d) }
    } catch {}
  }
}

/** What a snapshot holds besides this package's families: the rest of the registry. */
interface RegistryParts {
  /** The application's counters, histograms and summaries. */
  app: FamilySnapshot[]
  /** Per-process metrics and the application's gauges. */
  foreign: ForeignSnapshot[]
  /** Metrics with a `collect()` callback: the scraping process's own values, never written. */
  local: ForeignSnapshot[]
}

/** A foreign metric's samples, copied. */
function foreignOf (got: PromMetricValues, kind: 'process' | 'gauge'): ForeignSnapshot {
  return {
    name: got.name,
    help: got.help,
    type: String(got.type),
    kind,
    values: (got.values ?? []).map((v) => {
      const o: ForeignSnapshot['values'][number] = { labels: { ...(v.labels as Record<string, string | number>) }, value: v.value }
      const metricName = (v as MetricValueWithName<string>).metricName
      if (metricName !== undefined) o.metricName = metricName
      return o
    })
  }
}

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
  private readonly prefix: string
  private readonly onError: (component: string, err: unknown) => void
  private readonly gaugeModes = new Map<string, GaugeMode>()
  private readonly bounds = new Map<string, readonly number[]>()
  private readonly native = new Map<string, NativeHistogramConfig>()
  private readonly host = hostId()
  private readonly pstart = ownStart()
  private readonly processKey: string
  private readonly startedAt = Date.now()
  private refs = 0
  private seq = 0
  private tmpSeq = 0
  private timer: NodeJS.Timeout | undefined
  private chain: Promise<unknown> = Promise.resolve()
  private busy = false
  private closed = false
  /** The hand-over of a closing store; a successor's snapshots wait for it (its baseline). */
  private handover: Promise<void> | undefined
  /** The application's metrics as of the last flush, for the synchronous final snapshot at exit. */
  private lastParts: RegistryParts | undefined
  /** A scrape found the archive unreadable: the next merge sets it aside. */
  private archiveSuspect = false

  private constructor (opts: StoreOptions) {
    this.registry = opts.registry
    this.prefix = opts.prefix
    this.dir = opts.config.dir
    this.intervalMs = opts.config.flushIntervalMs
    this.onError = opts.onError
    this.id = `${this.host}-${process.pid}-${this.pstart}-${randomBytes(6).toString('hex')}`
    this.processKey = `${this.host}-${process.pid}-${this.pstart}`
    this.file = join(this.dir, `fnm-${this.id}.json`)
    for (const key of Object.keys(CATALOGUE) as FamilyKey[]) {
      const spec: { type: string, name: string, buckets?: 'latency' | 'size' } = CATALOGUE[key]
      if (spec.type === 'gauge') this.gaugeModes.set(opts.prefix + spec.name, GAUGE_MODES[key] ?? 'sum')
      if (spec.type === 'histogram' && opts.buckets !== undefined) this.bounds.set(opts.prefix + spec.name, opts.buckets[spec.buckets ?? 'latency'])
      if (opts.nativeHistograms != null && NATIVE_FAMILIES.has(key)) this.native.set(opts.prefix + spec.name, opts.nativeHistograms)
    }
  }

  /**
   * The store of a registry, created (and the directory checked) on first use. A store created
   * while the previous store of the registry is still handing its totals over waits for it
   * before its first snapshot, so that what was handed over is not counted again.
   * @throws FNM_ERR_MULTIPROCESS_DIR when the directory is missing or not writable
   */
  static acquire (opts: StoreOptions): MultiprocessStore {
    let store = STORES.get(opts.registry)
    if (store === undefined || store.closed) {
      checkDirectory(opts.config)
      const previous = store
      store = new MultiprocessStore(opts)
      STORES.set(opts.registry, store)
      store.open(previous?.handover)
    }
    store.refs++
    return store
  }

  private open (previousHandover: Promise<void> | undefined): void {
    OPEN.add(this)
    installHandlers()
    if (previousHandover !== undefined) {
      this.chain = previousHandover
      void this.flush(false).catch(() => {})
    } else {
      // A first file at once, so that the process is seen before its first interval.
      try {
        this.writeSync(this.snapshotSync(false))
      } catch (err) {
        this.onError('multiprocess', err)
      }
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
    if (--this.refs > 0 || this.closed) { await this.handover; return }
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    OPEN.delete(this)
    if (OPEN.size === 0) uninstallHandlers()
    this.handover = this.handOver()
    await this.handover
  }

  private async handOver (): Promise<void> {
    await this.chain.catch(() => {})
    try {
      const baseline = HANDED_OVER.get(this.registry)
      const snap = this.snapshotSync(true, await this.readRegistry(false, undefined, baseline), baseline)
      // Set even if the write below fails: the counts this store could not hand over are lost
      // (since its last successful write), never counted twice by a successor.
      HANDED_OVER.set(this.registry, baselineOf(snap.families, baseline))
      this.writeSync(snap, this.file, true)
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
      this.writeSync(this.snapshotSync(true), this.file, true)
    } catch {
      // Exiting: nothing to report to. The last periodic snapshot stays.
    }
  }

  // ----- snapshots

  private familySnapshots (baseline: Baseline | undefined): FamilySnapshot[] {
    const out: FamilySnapshot[] = []
    for (const m of this.registry.getMetricsAsArray() as unknown[]) {
      if (!isMetricFamily(m)) continue
      out.push(familySnapshot(m, this.gaugeModes.get(m.name), baseline?.get(m.name)))
    }
    return out
  }

  /**
   * This package's families, read now, with the rest of the registry as read by the last flush
   * (`parts`): the synchronous part of a snapshot.
   */
  private snapshotSync (final: boolean, parts = this.lastParts, baseline = HANDED_OVER.get(this.registry)): ProcessSnapshot {
    const families = this.familySnapshots(baseline)
    if (parts !== undefined) families.push(...parts.app)
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
      families,
      foreign: parts?.foreign ?? []
    }
  }

  /** How a metric of the registry that is not one of ours is treated (`docs/multiprocess.md`). */
  private roleOf (m: { name?: unknown, collect?: unknown }): 'process' | 'scrape' | 'app' {
    const name = String(m.name)
    const bare = name.startsWith(this.prefix) ? name.slice(this.prefix.length) : name
    if (/^(process|nodejs)_/.test(bare)) return 'process'
    return typeof m.collect === 'function' ? 'scrape' : 'app'
  }

  /**
   * Reads the registry apart from this package's families: runs the scrape-time collectors of
   * ours (all of them for a scrape; on the timer only those of the summed and deduplicated
   * gauges, which are cheap), prom-client's default metrics, and the application's metrics;
   * those with a `collect()` callback only for a scrape.
   */
  private async readRegistry (forScrape: boolean, onCollectError: CollectErrorHandler | undefined, baseline: Baseline | undefined): Promise<RegistryParts> {
    const metrics = this.registry.getMetricsAsArray() as unknown[]
    const parts: RegistryParts = { app: [], foreign: [], local: [] }
    const read = await Promise.all(metrics.map(async (m) => {
      const name = (m as { name?: string }).name ?? '(unnamed)'
      try {
        if (isMetricFamily(m)) {
          if (m.collect !== undefined && (forScrape || (m.type === 'gauge' && this.gaugeModes.get(m.name) !== 'latest'))) await m.prepare()
          return undefined
        }
        const role = this.roleOf(m as { name?: unknown, collect?: unknown })
        if (role === 'scrape' && !forScrape) return undefined
        const got = await (m as { get: () => Promise<PromMetricValues> }).get()
        const type = String(got.type)
        if (role === 'process') return (): void => { parts.foreign.push(foreignOf(got, 'process')) }
        if (role === 'scrape') return (): void => { parts.local.push(foreignOf(got, 'gauge')) }
        if (type === 'counter' || type === 'histogram' || type === 'summary') return (): void => { parts.app.push(appFamilySnapshot(m as { labelNames?: unknown }, got, baseline?.get(got.name))) }
        return (): void => { parts.foreign.push(foreignOf(got, 'gauge')) }
      } catch (err) {
        if (onCollectError !== undefined) onCollectError(name, err)
        else this.onError('collector', err)
        return undefined
      }
    }))
    // In the registry's order, whatever order the reads finished in.
    for (const add of read) add?.()
    return parts
  }

  /** Takes a snapshot and writes it; writes are serialised, so the file only moves forward. */
  async flush (forScrape: boolean, onCollectError?: CollectErrorHandler): Promise<ProcessSnapshot> {
    return (await this.flushParts(forScrape, onCollectError)).snap
  }

  /**
   * `flush`, with the scrape-time metrics read for it. A failed write (a full disk, a read-only
   * or vanished directory) is reported, and the snapshot is still returned: a scrape answers
   * from memory.
   */
  private async flushParts (forScrape: boolean, onCollectError?: CollectErrorHandler): Promise<{ snap: ProcessSnapshot, local: ForeignSnapshot[] }> {
    const run = this.chain.then(async () => {
      const baseline = HANDED_OVER.get(this.registry)
      const parts = await this.readRegistry(forScrape, onCollectError, baseline)
      this.lastParts = parts
      const snap = this.snapshotSync(false, parts, baseline)
      if (!this.closed) {
        try {
          await this.write(snap)
        } catch (err) {
          this.onError('multiprocess', err)
        }
      }
      return { snap, local: parts.local }
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

  /** Writes a file atomically; `durable` (the archive, final snapshots): fsynced before the rename. */
  private writeSync (snap: ProcessSnapshot | ArchiveSnapshot, path = this.file, durable = false): void {
    const tmp = this.tmpName()
    try {
      writeAtomicSync(this.dir, tmp, path, JSON.stringify(snap), durable)
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
   * id the archive lists is skipped (it was merged while we read). A closed store reports no
   * snapshot of its own: its final one is in its file or already in the archive.
   */
  async render (format: 'prometheus' | 'openmetrics', onCollectError?: CollectErrorHandler): Promise<string> {
    return (await this.renderBuffer(format, onCollectError)).toString('utf8')
  }

  /** `render()` as bytes, in any exposition format (protobuf included). */
  async renderBuffer (format: ExpositionFormat, onCollectError?: CollectErrorHandler): Promise<Buffer> {
    let own: { snap: ProcessSnapshot, local: ForeignSnapshot[] } | undefined
    if (!this.closed) {
      own = await this.flushParts(true, onCollectError)
      if (this.closed) own = undefined
    }
    if (own === undefined) await this.handover
    let names: string[] = []
    try {
      names = await readdir(this.dir)
    } catch (err) {
      this.onError('multiprocess', err)
    }
    const ownName = `fnm-${this.id}.json`
    const files = await Promise.all(names.filter((n) => PROCESS_FILE.test(n) && (own === undefined || n !== ownName)).map(async (n) => await this.readJson<ProcessSnapshot>(n, false)))
    const archive = await this.readJson<ArchiveSnapshot>(ARCHIVE_FILE, true)
    const merged = archive?.merged ?? {}
    const agg = new Aggregate((name) => { this.onError('multiprocess', new Error(`metric '${name}' has another type or other labels in another process; left out`)) }, false, this.bounds, this.native)
    if (own !== undefined) {
      agg.addFamilies(own.snap.families, 'local', own.snap.heartbeat)
      agg.addForeign(own.snap.foreign, this.processKey, process.pid, Infinity)
      agg.addForeign(own.local, this.processKey, process.pid, Infinity, true)
    }
    const now = Date.now()
    for (const f of files) {
      if (f === undefined || merged[f.id] !== undefined) continue
      const live = this.isLive(f, now)
      agg.addFamilies(f.families, live ? 'live' : 'dead', f.heartbeat)
      if (live) agg.addForeign(f.foreign ?? [], `${f.host}-${f.pid}-${f.pstart}`, f.pid, f.heartbeat)
    }
    if (archive !== undefined) agg.addFamilies(archive.families, 'dead', 0)
    const defaults = (this.registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels
    return await renderRegistryBuffer(agg.toRegistry(defaults), format, onCollectError)
  }

  /** Gauges of a process count while it runs and its heartbeat is fresh. */
  private isLive (f: ProcessSnapshot, now: number): boolean {
    if (f.final) return false
    if (now - f.heartbeat > Math.max(5 * (f.intervalMs ?? this.intervalMs), 10_000)) return false
    return f.host !== this.host || processAlive(f.pid, f.pstart)
  }

  /**
   * A file's parsed content; undefined when it is gone (merged meanwhile), unreadable or
   * malformed (reported; an unreadable archive is set aside by the next merge).
   */
  private async readJson<T> (name: string, archive: boolean): Promise<T | undefined> {
    let text: string
    try {
      text = await readFile(join(this.dir, name), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError('multiprocess', err)
      return undefined
    }
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch {}
    if (wellFormed(parsed, archive)) return parsed as T
    if (archive) this.archiveSuspect = true
    this.onError('multiprocess', new ReadError(`${name}: not a well-formed ${FORMAT} file; left out`))
    return undefined
  }

  // ----- merging dead processes into the archive

  /**
   * Merges the files of dead processes into the archive, then removes them: of this node, those
   * whose process is gone; of other nodes (other pid namespaces, boots or hosts, whose processes
   * cannot be asked), those holding a final snapshot. With `self`, this closed store's own file
   * too. Removes temporary files of dead processes of this node. Synchronous, so no other work
   * of this process interleaves. Returns false when the lock was held by a live process (try
   * again later).
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
          if (m[1] === this.host ? !processAlive(Number(m[2]), m[3]) : isFinalFile(join(this.dir, n))) dead.push(n)
          continue
        }
        const t = TMP_FILE.exec(n)
        if (t !== null && t[1] === this.host && !processAlive(Number(t[2]), t[3])) tmps.push(n)
      }
      for (const n of tmps) { try { unlinkSync(join(this.dir, n)) } catch {} }
      if (dead.length === 0 && !this.archiveSuspect) return true
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

  /**
   * The archive, or undefined when there is none. A torn or corrupt archive is set aside
   * (renamed to `fnm-archive.corrupt-<time>-<random>.json`) and reported: the totals it held
   * are lost, the merges go on.
   */
  private readArchiveLocked (archivePath: string): { archive: ArchiveSnapshot | undefined, setAside: boolean } {
    let text: string
    try {
      text = readFileSync(archivePath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { archive: undefined, setAside: false }
      throw err
    }
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch {}
    if (wellFormed(parsed, true)) return { archive: parsed as ArchiveSnapshot, setAside: false }
    const aside = `fnm-archive.corrupt-${Date.now()}-${randomBytes(3).toString('hex')}.json`
    renameSync(archivePath, join(this.dir, aside))
    this.onError('multiprocess', new ReadError(`${ARCHIVE_FILE} is torn or corrupt; set aside as ${aside} (the totals of the processes it held are lost)`))
    return { archive: undefined, setAside: true }
  }

  private mergeLocked (dead: string[]): void {
    const now = Date.now()
    const archivePath = join(this.dir, ARCHIVE_FILE)
    const { archive, setAside } = this.readArchiveLocked(archivePath)
    this.archiveSuspect = false
    const merged: Record<string, number> = { ...(archive?.merged ?? {}) }
    const agg = new Aggregate(() => { this.onError('multiprocess', new Error('a dead process file disagrees with the archive on a metric\'s type or labels; that metric is left out')) }, true)
    if (archive !== undefined) agg.addFamilies(archive.families, 'dead', 0)
    const done: string[] = []
    let changed = setAside
    for (const n of dead) {
      const id = n.slice(4, -5)
      done.push(n)
      if (merged[id] !== undefined) continue // merged before a crash, not yet removed
      let snap: unknown
      try {
        snap = JSON.parse(readFileSync(join(this.dir, n), 'utf8'))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') { done.pop(); continue }
      }
      if (!wellFormed(snap, false)) {
        this.onError('multiprocess', new ReadError(`${n}: not a well-formed ${FORMAT} file; removed`))
        continue
      }
      agg.addFamilies((snap as ProcessSnapshot).families, 'dead', 0)
      merged[id] = now
      changed = true
    }
    for (const id of Object.keys(merged)) {
      if (now - merged[id] < MERGED_ID_TTL_MS) continue
      let exists = true
      try { statSync(join(this.dir, `fnm-${id}.json`)) } catch { exists = false }
      if (!exists) { delete merged[id]; changed = true }
    }
    if (changed) this.writeSync({ format: `${FORMAT}/archive`, v: VERSION, merged, families: agg.toSnapshots() }, archivePath, true)
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
