/**
 * Start (created) timestamps: when a counter, histogram or summary series began. Pure logic, no
 * I/O and no clock: the callers give the times.
 *
 * The package's own series know their start exactly (`startMs`, set where a series is created or
 * reset, lib/families/series.ts). The application's own metrics are the client's objects, which keep no
 * start: for them the start is the latest time the package *knows* the series was zero, learned
 * from the outside (docs/metrics.md, "Start timestamps"):
 * - a collect of the metric in which the series was absent: it began after that collect;
 * - `registry.resetMetrics()`, seen through the package's own families' `reset()`, which the
 *   registry runs with every other metric's: every series began again then;
 * - a collect in which the series is at zero (a counter at 0, a histogram or summary with no
 *   observation): it began then at the earliest;
 * - nothing else: a series present the first time its metric is collected, or whose value went
 *   down between two collects without a registry reset (the app reset that one metric), has no
 *   known start and is served without one until one of the two events above.
 * So the start served is never after the true start, and at most one scrape interval before it.
 *
 * For the multiprocess store: `sumStart` (the start of a sum over processes; `foldStart` and
 * `foldedStart`, the same one part at a time) and `keptStart` (never later between scrapes unless
 * the sum restarted), kept per series in `ServedStarts` from one scrape to the next.
 */

/** What the tracker keeps of one series of an application metric. */
export interface SeriesState {
  /** Milliseconds since the epoch; undefined when unknown. */
  readonly start: number | undefined
  /** The counter's value, or the histogram's or summary's count, at the last collect. */
  readonly total: number
}

/** What the tracker keeps of one application metric between collects. */
export interface MetricStarts {
  /** When this metric was last collected (the time taken before its `get()`). */
  readonly collectedMs: number
  readonly series: ReadonlyMap<string, SeriesState>
}

/**
 * The starts after one more collect of a metric.
 * @param previous the state after the previous collect, undefined the first time
 * @param totals each series of this collect (by label key) and its value or count
 * @param collectedMs when this collect began
 * @param resetMs when the registry's metrics were last reset (`registry.resetMetrics()`), -Infinity if never
 */
export function nextStarts (previous: MetricStarts | undefined, totals: ReadonlyMap<string, number>, collectedMs: number, resetMs: number): MetricStarts {
  const series = new Map<string, SeriesState>()
  const resetSince = previous !== undefined && resetMs > previous.collectedMs
  for (const [key, total] of totals) {
    const before = previous?.series.get(key)
    let start: number | undefined
    if (previous === undefined) start = undefined // present at first sight: when it began is unknown
    else if (before === undefined || resetSince) start = Math.max(previous.collectedMs, resetMs) // absent then, or zeroed since
    else if (total < before.total) start = undefined // went down: reset on its own, at a time unknown
    else start = before.start
    // At zero now: it is known to be zero at this collect, whatever came before.
    if (start === undefined && total === 0) start = collectedMs
    series.set(key, { start, total })
  }
  return { collectedMs, series }
}

/** The key of a series: its labels without `le` / `quantile`, in their order. */
export function seriesKey (labels: Record<string, string | number | undefined> | undefined, without: string): string {
  let key = ''
  if (labels === undefined) return key
  for (const k of Object.keys(labels)) {
    if (k === without || labels[k] === undefined) continue
    key += `${k}\u0000${String(labels[k])}\u0001`
  }
  return key
}

/**
 * The start of a sum over processes (multiprocess mode): the earliest start of what it sums, or
 * undefined when any part's start is unknown (the sum may hold counts from before it).
 */
export function sumStart (parts: ReadonlyArray<number | undefined>): number | undefined {
  let min = Infinity
  for (const p of parts) {
    if (p === undefined) return undefined
    if (p < min) min = p
  }
  return min === Infinity ? undefined : min
}

/**
 * The start to serve for a summed series at this scrape, given what was served at the previous
 * one: never later than before unless the sum went down (really restarted: a process's counts
 * left the sum, or all were reset), so a process starting later does not move the start forward.
 * @param previous the start and total served at the previous scrape, if any
 * @param start `sumStart` of this scrape's parts
 * @param total the summed value (or count) of this scrape
 */
export function keptStart (previous: SeriesState | undefined, start: number | undefined, total: number): number | undefined {
  if (previous === undefined || total < previous.total || start === undefined) return start
  return previous.start === undefined ? start : Math.min(previous.start, start)
}

/**
 * `sumStart` one part at a time, without an array (the multiprocess aggregate adds the parts of
 * every series as it reads the files): the running start is `Infinity` before the first part,
 * the earliest start so far, and NaN for good once a part's start is unknown.
 * @param acc the running start (`Infinity` at first)
 * @param part one more part's start, undefined when unknown
 */
export function foldStart (acc: number, part: number | undefined): number {
  return Math.min(acc, part ?? NaN)
}

/** A running start of `foldStart` as `sumStart` gives it: undefined when unknown (NaN) or without parts (`Infinity`). */
export function foldedStart (acc: number): number | undefined {
  return Number.isFinite(acc) ? acc : undefined
}

/**
 * What a multiprocess store served of one family at its last scrape: each series (by its key,
 * its label text), the start served (`keptStart`) and the summed total, in the order of that
 * scrape. Plain arrays, no object per series: a scrape of 8 x 2,000 series builds one per family.
 */
export class ServedFamily {
  private readonly keys: string[] = []
  private readonly starts: number[] = []
  private readonly totals: number[] = []
  private index: Map<string, number> | undefined

  /** Records what is served of the next series (`start` undefined: none). */
  add (key: string, start: number | undefined, total: number): void {
    this.keys.push(key)
    this.starts.push(start ?? NaN)
    this.totals.push(total)
  }

  /**
   * What was served of series `key`, if it was.
   * @param hint where it is likely to be: its position in this scrape (the series of a family
   *   come in the same order from one scrape to the next, unless the processes changed)
   */
  get (key: string, hint: number): SeriesState | undefined {
    let i = hint
    if (this.keys[i] !== key) {
      // Built once, on the first miss.
      if (this.index === undefined) {
        this.index = new Map()
        for (let k = 0; k < this.keys.length; k++) this.index.set(this.keys[k], k)
      }
      i = this.index.get(key) ?? -1
      if (i < 0) return undefined
    }
    const start = this.starts[i]
    return { start: Number.isNaN(start) ? undefined : start, total: this.totals[i] }
  }

  /** How many series were served. */
  get size (): number {
    return this.keys.length
  }
}

/**
 * What a multiprocess store served at its last scrape, by family name (counters, histograms and
 * summaries). Holds the series of that scrape only, so it stays as large as one scrape.
 */
export type ServedStarts = ReadonlyMap<string, ServedFamily>
