/**
 * Sums snapshots (pure, no I/O): the scrape's aggregate of every process file and the archive,
 * and the archive's own merge of the files of dead processes. Classic buckets are added bucket
 * by bucket, `_sum`s exactly (`exact.ts`), native buckets merged exactly (`../native.ts`); gauges
 * of live processes by their mode. The start of each summed series is the earliest of its parts'
 * (`foldStart`), unknown when any part's is; a scrape then keeps it against what it served
 * before (`keepStarts`).
 */
import type { ClientMetricObject, ClientMetricValue, PrometheusRegistry } from '../client'
import { setStarts } from '../exposition'
import { CounterFamily, GaugeFamily, HistogramFamily, type CounterSeries, type GaugeSeries, type HistogramSeries, type MetricFamily } from '../families'
import type { NativeBuckets, NativeHistogramConfig, NativeSnapshot } from '../native'
import { foldedStart, foldStart, keptStart, ServedFamily, type ServedStarts } from '../starts'
import type { GaugeMode } from './config'
import { addExact, addToSum, exactSum, sumValue, type ExactSum } from './exact'
import { countOf, decodeNumber, encodeNumber, nativeRow, StartsReader, withSharedZeroThreshold, type FamilySnapshot, type ForeignSnapshot } from './format'
import { archiveNative, familySnapshot } from './snapshot'
import { SummaryFamily, type SummarySeries } from './summary'

function sameArray (a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** A `_sum` in a snapshot added to an exact sum: a stored number, or exact partials (archive). */
function addSum (sum: ExactSum, v: unknown): void {
  if (Array.isArray(v)) { for (const p of v) if (typeof p === 'number' && Number.isFinite(p)) addExact(sum.partials, p) } else addToSum(sum, decodeNumber(v))
}

/** An exact sum as the archive stores it: its partials (one number when one), or its non-finite value. */
function storedSum (sum: ExactSum): number | string | number[] {
  if (sum.special !== 0) return encodeNumber(sum.special)
  return sum.partials.length === 1 ? sum.partials[0] : sum.partials.length === 0 ? 0 : [...sum.partials]
}

interface AggFamily {
  family: MetricFamily<unknown>
  type: FamilySnapshot['type']
  mode: GaugeMode
  labelNames: string[]
  bounds?: number[]
  /** `latest` gauges: the heartbeat of the source of each series' value. */
  freshness?: Map<unknown, number>
  /** `min`, `max` and `average` gauges: how many sources each series' value comes from. */
  sources?: Map<unknown, number>
  /** Histograms and summaries: the exact `_sum` of each series. */
  sums?: Map<HistogramSeries | SummarySeries, ExactSum>
  /** Histograms: what each series' native buckets are made of, merged once every file is read. */
  nativeParts?: Map<HistogramSeries, NativePart[]>
  /** Archive histograms: the native buckets of each series that has any (from `nativeParts`). */
  natives?: Map<HistogramSeries, NativeBuckets>
  /** Each series with its `_sum`, by its label values, one map level per label (see `slot`). */
  index: LabelIndex
}

/** A series of an aggregate family, found by its label values. */
interface Slot {
  series: unknown
  sum: ExactSum
}

/** Slots by label values: a map per label, the last level holding the slots (a family without labels: one slot under `''`). */
type LabelIndex = Map<string, LabelIndex | Slot>

/** One foreign metric: its samples by process key (`process` kind: the freshest source's). */
interface AggForeign {
  name: string
  help: string
  type: string
  kind: 'process' | 'gauge' | 'local'
  byProcess: Map<string, { pid: number, heartbeat: number, values: ForeignSnapshot['values'] }>
}

/** A summed series with its running start (`foldStart`: `Infinity` before its first part, NaN when unknown). */
type Started = CounterSeries | HistogramSeries | SummarySeries

/** No known start: the foreign metrics of a scrape's aggregate other than the scraping process's own. */
const NO_STARTS: ReadonlyMap<string, number> = new Map()

/** Where a snapshot comes from, which decides what of it counts. */
export type SourceKind = 'local' | 'live' | 'dead'

/** One source of a series' native buckets: its native snapshot, or its classic counts (`row[start + i]`). */
type NativePart = NativeSnapshot | { bounds: readonly number[], row: ReadonlyArray<unknown>, start: number }

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
    const c = countOf(counts[start + i])
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
    const [, traceId, spanId, stored, timestampMs] = e as unknown[]
    if (typeof traceId !== 'string' || typeof spanId !== 'string' || (typeof stored !== 'number' && typeof stored !== 'string') || typeof timestampMs !== 'number') continue
    const value = decodeNumber(stored)
    const bounds = h.upperBounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    h.exemplars ??= new Array(h.counts.length).fill(undefined)
    const prev = h.exemplars[i]
    if (prev === undefined || timestampMs > prev.timestampMs) h.exemplars[i] = { traceId, spanId, value, timestampMs }
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

  /** Adds a snapshot's families; a dead source's gauges are left out. */
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
      // Starts on: each summed series' `startMs` is set from its parts (NaN: unknown, none served).
      const config = { name: f.name, help: f.help, labelNames: f.labelNames, starts: true }
      const bounds = f.type !== 'histogram' ? undefined : this.keepLayouts ? f.buckets ?? [] : [...(this.preferredBounds?.get(f.name) ?? f.buckets ?? [])]
      const family = f.type === 'counter'
        ? new CounterFamily(config)
        : f.type === 'gauge'
          ? new GaugeFamily(config)
          : f.type === 'summary' ? new SummaryFamily(config) : new HistogramFamily({ ...config, buckets: bounds ?? [], native: this.keepLayouts ? null : this.preferredNative?.get(f.name) ?? null })
      agg = { family, type: f.type, mode: f.mode ?? 'sum', labelNames: f.labelNames, bounds, index: new Map() }
      if (agg.mode === 'latest') agg.freshness = new Map()
      else if (agg.mode !== 'sum') agg.sources = new Map()
      if (f.type === 'histogram' || f.type === 'summary') agg.sums = new Map()
      this.families.set(key, agg)
    } else if (agg.type !== f.type || !sameArray(agg.labelNames, f.labelNames)) {
      this.onMismatch(f.name)
      return
    }
    const n = f.labelNames.length
    const starts = new StartsReader(f.starts)
    if (agg.type === 'counter') {
      for (const s of f.series) {
        const c = this.slot(agg, s, n).series as CounterSeries
        c.value += decodeNumber(s[n])
        c.startMs = foldStart(c.startMs, starts.next())
      }
    } else if (agg.type === 'gauge') {
      for (const s of f.series) this.addGauge(agg, this.slot(agg, s, n).series as GaugeSeries, decodeNumber(s[n]), kind === 'local' ? Infinity : heartbeat)
    } else if (agg.type === 'summary') {
      for (const s of f.series) {
        const slot = this.slot(agg, s, n)
        const m = slot.series as SummarySeries
        addSum(slot.sum, s[n])
        m.count += countOf(s[n + 1])
        m.startMs = foldStart(m.startMs, starts.next())
      }
    } else {
      this.addHistogram(agg, f, kind, starts)
    }
  }

  /** One source's value of a gauge series, combined by the family's mode. */
  private addGauge (agg: AggFamily, g: GaugeSeries, v: number, freshness: number): void {
    switch (agg.mode) {
      case 'sum': g.value += v; return
      case 'latest': {
        const fresh = agg.freshness as Map<unknown, number>
        if ((fresh.get(g) ?? -1) < freshness) { fresh.set(g, freshness); g.value = v }
        return
      }
      default: {
        const sources = agg.sources as Map<unknown, number>
        const seen = sources.get(g) ?? 0
        sources.set(g, seen + 1)
        if (seen === 0) g.value = v
        else if (agg.mode === 'average') g.value += v
        else g.value = agg.mode === 'min' ? Math.min(g.value, v) : Math.max(g.value, v)
      }
    }
  }

  private addHistogram (agg: AggFamily, f: FamilySnapshot, kind: SourceKind, starts: StartsReader): void {
    const n = f.labelNames.length
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
      addSum(slot.sum, s[n])
      h.count += countOf(s[n + 1])
      h.startMs = foldStart(h.startMs, starts.next())
      const counts = h.counts
      if (same) {
        for (let i = 0; i < counts.length; i++) counts[i] += countOf(s[n + 2 + i])
      } else {
        // Other buckets (a configuration change between deploys): each old bucket goes into the
        // first bucket whose bound is at least its own; _sum and _count stay exact.
        const from = f.buckets ?? []
        const to = h.upperBounds
        for (let i = 0; i <= from.length; i++) {
          const c = countOf(s[n + 2 + i])
          if (c === 0) continue
          const bound = i < from.length ? from[i] : Infinity
          let j = 0
          while (j < to.length && to[j] < bound) j++
          counts[j] += c
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
   * Looked up label by label, without building a key or the copies `child(...labels)` needs: a
   * scrape does this for every series of every file.
   */
  private slot (agg: AggFamily, row: ReadonlyArray<unknown>, n: number): Slot {
    let level = agg.index
    for (let i = 0; i < n - 1; i++) {
      const label = String(row[i])
      let next = level.get(label) as LabelIndex | undefined
      if (next === undefined) level.set(label, next = new Map())
      level = next
    }
    const last = n === 0 ? '' : String(row[n - 1])
    let slot = level.get(last) as Slot | undefined
    if (slot === undefined) {
      const series = agg.family.child(...(row.slice(0, n) as string[]))
      // The identity of `foldStart`: the parts' starts are folded in as they are added.
      if (agg.type !== 'gauge') (series as Started).startMs = Infinity
      slot = { series, sum: exactSum() }
      agg.sums?.set(series as HistogramSeries, slot.sum)
      level.set(last, slot)
    }
    return slot
  }

  /**
   * Adds the foreign metrics of one process. `process` metrics keep one value per process (the
   * freshest registry's: two registries of one process report the same process); `gauge` ones
   * (files of version 1) are summed over the registries of the process; `local` ones (the
   * scraping process's scrape-time metrics) are rendered as they are, without a `pid` label.
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
  private foreignValues (f: AggForeign, pidLabels: ReadonlyMap<string, string>): Array<ClientMetricValue> {
    const out: Array<ClientMetricValue> = []
    for (const [key, p] of f.byProcess) {
      const extra = f.kind === 'local' ? undefined : pidLabels.get(key)
      if (f.kind === 'process' || f.kind === 'local') {
        for (const v of p.values) out.push({ metricName: v.metricName, labels: extra === undefined ? v.labels : { pid: extra, ...v.labels }, value: decodeNumber(v.value) })
        continue
      }
      const summed = new Map<string, ClientMetricValue>()
      for (const v of p.values) {
        const k = `${v.metricName ?? ''}\u0000${JSON.stringify(v.labels)}`
        const s = summed.get(k)
        if (s === undefined) summed.set(k, { metricName: v.metricName, labels: { pid: extra as string, ...v.labels }, value: decodeNumber(v.value) })
        else s.value += decodeNumber(v.value)
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
          const sum = agg.sums.get(h)
          if (sum !== undefined) snap.series[i][n] = storedSum(sum)
          i++
        }
      }
      out.push(snap)
    }
    return out
  }

  /** Sets every histogram and summary series' `_sum` to its exact sum, and every average gauge to its mean. */
  private finish (): void {
    for (const agg of this.families.values()) {
      this.mergeNatives(agg)
      if (agg.mode === 'average' && agg.sources !== undefined) for (const [g, n] of agg.sources) (g as GaugeSeries).value /= n
      if (agg.sums === undefined) continue
      for (const [h, sum] of agg.sums) h.sum = sumValue(sum)
    }
  }

  /**
   * The starts a scrape serves (docs/multiprocess.md, "Start timestamps"): each summed series'
   * start, the earliest of its parts' (unknown when any part's is), kept against what the
   * previous scrape of the same store served (`keptStart`: never later unless the sum went
   * down). Sets them on the series (`startMs`, NaN when none) and returns them for the next
   * scrape, holding this scrape's series only. Call it once every source is added.
   * @param previous what the store's previous scrape served (this method's previous result)
   */
  keepStarts (previous: ServedStarts | undefined): ServedStarts {
    const out = new Map<string, ServedFamily>()
    for (const agg of this.families.values()) {
      if (agg.type === 'gauge') continue
      const family = agg.family
      const before = previous?.get(family.name)
      const served = new ServedFamily()
      const counter = agg.type === 'counter'
      for (let i = 0; i < family.size; i++) {
        const s = family.at(i) as Started
        const total = counter ? (s as CounterSeries).value : (s as HistogramSeries | SummarySeries).count
        const start = keptStart(before?.get(s.labelText, i), foldedStart(s.startMs), total)
        s.startMs = start ?? NaN
        served.add(s.labelText, start, total)
      }
      out.set(family.name, served)
    }
    return out
  }

  /**
   * A registry of the app's client (`RegistryClass`) holding the aggregate, for `renderRegistry`.
   * @param localStarts the starts of the scraping process's scrape-time metrics (`local`
   *   foreign ones), by metric name and `seriesKey`; every other foreign metric has none (its
   *   series are per process)
   */
  toRegistry (defaultLabels: Record<string, string> | undefined, RegistryClass: new () => PrometheusRegistry, localStarts?: ReadonlyMap<string, ReadonlyMap<string, number>>): PrometheusRegistry {
    this.finish()
    const registry = new RegistryClass()
    if (defaultLabels !== undefined && Object.keys(defaultLabels).length > 0) registry.setDefaultLabels(defaultLabels)
    for (const agg of this.families.values()) registry.registerMetric(agg.family as never)
    const pidLabels = this.pidLabels()
    for (const f of this.foreign.values()) {
      if (this.families.has(f.name)) continue
      const metric = { name: f.name, help: f.help, type: f.type, aggregator: 'sum', values: this.foreignValues(f, pidLabels) }
      setStarts(metric as unknown as ClientMetricObject, (f.kind === 'local' ? localStarts?.get(f.name) : undefined) ?? NO_STARTS)
      registry.registerMetric({ name: f.name, help: f.help, type: f.type, aggregator: 'sum', get: async () => metric } as never)
    }
    return registry
  }
}
