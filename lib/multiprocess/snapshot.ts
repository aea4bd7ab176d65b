/**
 * What a process writes (pure): its registry's metrics as snapshot families, less what it has
 * handed over already (a registry closed and used again in one process). This package's
 * families are read from memory; the application's prom-client metrics from their `get()`.
 */
import type { ClientMetricObject } from '../client'
import type { CounterSeries, GaugeSeries, HistogramFamily, HistogramSeries, MetricFamily } from '../families'
import { MAX_SCHEMA, NativeBuckets, type NativeSnapshot } from '../native'
import { foldStart, seriesKey } from '../starts'
import type { GaugeMode } from './config'
import { decodeNumber, encodeNumber, nativeRow, StartsWriter, withSharedZeroThreshold, type ExemplarSnapshot, type FamilySnapshot, type ForeignSnapshot } from './format'

/** The value of `get()` of a prom-client metric. */
export type PromMetricValues = ClientMetricObject

/** Numbers of one series handed over already: its snapshot row's numbers, and its native buckets. */
export interface Handed {
  nums: readonly number[]
  native?: NativeSnapshot
}

/** Values handed over to the archive already, per family and label key (see `baselineOf`). */
export type Baseline = Map<string, Map<string, Handed>>

/**
 * `value` less what was handed over of it. A non-finite value handed over stays in the
 * archive's total, so the same value again adds nothing (`Infinity - Infinity` would be NaN).
 */
function less (value: number, handed: number | undefined): number {
  if (handed === undefined || handed === 0) return value
  if (Number.isFinite(handed)) return value - handed
  return Object.is(value, handed) ? 0 : value
}

/**
 * Native buckets for the archive (and a hand-over's baseline), with the zero threshold of
 * their first source: as fine as any source (each merge reduces them to the source's schema),
 * never reduced for their number.
 */
export function archiveNative (zeroThreshold: number): NativeBuckets {
  return new NativeBuckets({ bucketFactor: 1, schema: MAX_SCHEMA, maxBuckets: 2 ** 20, zeroThreshold, classic: true })
}

/**
 * A family's series as a snapshot; counters, histograms and summaries less the baseline, if any,
 * with their starts (`startMs`) when the family has them (`starts`): a series keeps its start
 * when part of it was handed over, since the archive holds that part with the same start.
 */
export function familySnapshot (family: MetricFamily<unknown>, mode: GaugeMode | undefined, baseline?: Map<string, Handed>): FamilySnapshot {
  const type = family.type as FamilySnapshot['type']
  const labelNames = [...family.labelNames]
  const series: FamilySnapshot['series'] = []
  const snap: FamilySnapshot = { name: family.name, type, help: family.help, labelNames, series }
  if (type === 'histogram') snap.buckets = Array.from((family as HistogramFamily).upperBounds)
  if (type === 'gauge') snap.mode = mode ?? 'sum'
  const nativeConfig = type === 'histogram' ? (family as HistogramFamily).native : null
  const native: Array<Array<number | null> | 0> | undefined = nativeConfig != null ? [] : undefined
  let exemplars: Array<ExemplarSnapshot[] | 0> | undefined
  const starts = family.starts === true && type !== 'gauge' ? new StartsWriter() : undefined
  for (const s of family.entries() as Iterable<CounterSeries | GaugeSeries | HistogramSeries>) {
    if (starts !== undefined) starts.add((s as CounterSeries).startMs)
    const row: Array<string | number> = []
    for (const name of labelNames) row.push(s.labels[name])
    const base = baseline?.get(row.join('\u0000'))
    const nums = base?.nums
    if (type === 'histogram' || type === 'summary') {
      const h = s as HistogramSeries
      const sum = nums === undefined ? h.sum : less(h.sum, nums[0])
      row.push(Number.isFinite(sum) ? sum : encodeNumber(sum), h.count - (nums?.[1] ?? 0))
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
          h.exemplars.forEach((e, i) => { if (e !== undefined) list.push([i, e.traceId, e.spanId, encodeNumber(e.value), e.timestampMs]) })
          exemplars.push(list)
        } else if (exemplars !== undefined) exemplars.push(0)
      }
    } else {
      let v = (s as CounterSeries).value
      if (nums !== undefined && type === 'counter') v = less(v, nums[0])
      // Finite values as they are, without a call: this runs for every series at every flush.
      row.push(Number.isFinite(v) ? v : encodeNumber(v))
    }
    series.push(row)
  }
  if (native !== undefined) {
    snap.native = native
    snap.nativeZeroThreshold = nativeConfig?.zeroThreshold
  }
  if (exemplars !== undefined) snap.exemplars = exemplars
  if (starts !== undefined) snap.starts = starts.starts
  return snap
}

/** The label names of an application metric: its declared ones, then any other its samples carry. */
function appLabelNames (metric: { labelNames?: unknown }, values: PromMetricValues['values'], skip: string): string[] {
  const names = Array.isArray(metric.labelNames) ? (metric.labelNames as unknown[]).filter((n): n is string => typeof n === 'string' && n !== skip) : []
  const extra = new Set<string>()
  for (const v of values) for (const k of Object.keys(v.labels ?? {})) if (k !== skip && !names.includes(k)) extra.add(k)
  return [...names, ...[...extra].sort()]
}

/**
 * An application's Counter, Gauge, Histogram or Summary as a snapshot family, counters,
 * histograms and summaries less the baseline: aggregated and archived like this package's own
 * families. Histogram buckets are made non-cumulative; a Summary keeps `_sum` and `_count`; a
 * Gauge carries the mode of its aggregator.
 * @param starts counters, histograms and summaries: the known starts of the collect `got`, by
 *   `seriesKey` (lib/exposition.ts, `trackStarts`); each row's is written (unknown: `null`).
 *   Without it, no starts are written (every one unknown).
 */
export function appFamilySnapshot (metric: { labelNames?: unknown }, got: PromMetricValues, mode: GaugeMode, baseline?: Map<string, Handed>, starts?: ReadonlyMap<string, number>): FamilySnapshot {
  const type = String(got.type) as 'counter' | 'gauge' | 'histogram' | 'summary'
  const values = got.values ?? []
  const skip = type === 'histogram' ? 'le' : type === 'summary' ? 'quantile' : ''
  const labelNames = appLabelNames(metric, values, skip)
  const snap: FamilySnapshot = { name: got.name, type, help: got.help, labelNames, series: [] }
  if (type === 'gauge') snap.mode = mode
  const withStarts = starts !== undefined && type !== 'gauge'
  const written = withStarts ? new StartsWriter() : undefined
  // `start`: a running `foldStart` of the samples that make the row (one, but for odd labels).
  const rows = new Map<string, { labels: string[], nums: number[], cum: Array<[number, number]>, start: number }>()
  for (const v of values) {
    const labels = labelNames.map((n) => { const x = (v.labels as Record<string, unknown>)[n]; return x === undefined ? '' : String(x) })
    const key = labels.join('\u0000')
    let row = rows.get(key)
    if (row === undefined) { row = { labels, nums: type === 'counter' || type === 'gauge' ? [0] : [0, 0], cum: [], start: Infinity }; rows.set(key, row) }
    const sample = v.metricName ?? got.name
    if (type === 'counter' || type === 'gauge') {
      row.nums[0] += v.value
      if (withStarts) row.start = foldStart(row.start, starts.get(seriesKey(v.labels, '')))
    } else if (sample.endsWith('_sum')) row.nums[0] = v.value
    else if (sample.endsWith('_count')) {
      row.nums[1] = v.value
      if (withStarts) row.start = foldStart(row.start, starts.get(seriesKey(v.labels, '')))
    }
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
    const base = type === 'gauge' ? undefined : baseline?.get(row.labels.join('\u0000'))?.nums
    if (base !== undefined) {
      row.nums[0] = less(row.nums[0], base[0])
      for (let i = 1; i < row.nums.length; i++) row.nums[i] -= base[i] ?? 0
    }
    while (type === 'histogram' && row.nums.length > 2 && row.nums[row.nums.length - 1] === 0) row.nums.pop()
    snap.series.push([...row.labels, encodeNumber(row.nums[0]), ...row.nums.slice(1)])
    written?.add(row.start) // Infinity (no sample) or NaN: unknown
  }
  if (type === 'histogram') snap.buckets ??= []
  if (written !== undefined && snap.series.length > 0) snap.starts = written.starts
  return snap
}

/** A default metric's samples, copied, for the per-process series of the scrape. */
export function foreignOf (got: PromMetricValues, kind: 'process' | 'gauge'): ForeignSnapshot {
  return {
    name: got.name,
    help: got.help,
    type: String(got.type),
    kind,
    values: (got.values ?? []).map((v) => {
      const o: ForeignSnapshot['values'][number] = { labels: { ...(v.labels as Record<string, string | number>) }, value: encodeNumber(v.value) }
      const metricName = v.metricName
      if (metricName !== undefined) o.metricName = metricName
      return o
    })
  }
}

/** The numbers of the counters, histograms and summaries of a snapshot added to `previous`, by family and label key. */
export function baselineOf (families: readonly FamilySnapshot[], previous: Baseline | undefined): Baseline {
  const out: Baseline = new Map()
  for (const f of families) {
    if (f.type === 'gauge') continue
    const n = f.labelNames.length
    const prev = previous?.get(f.name)
    const m = new Map<string, Handed>()
    for (let r = 0; r < f.series.length; r++) {
      const s = f.series[r]
      const key = s.slice(0, n).join('\u0000')
      const nums = s.slice(n).map(decodeNumber)
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
