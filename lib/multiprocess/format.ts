/**
 * The shared directory's file format (docs/multiprocess.md, "File format"), reader and writer
 * side by side: file names, the snapshot types, how a number is written and read back, and the
 * check that a parsed file is a snapshot. Pure: the I/O is in `files.ts`.
 *
 * Version 2 writes NaN, +Inf and -Inf as the strings `"NaN"`, `"+Inf"`, `"-Inf"` (JSON has no
 * such numbers; version 1 wrote them as `null`, which reads back as NaN), and the application's
 * gauges as families with their aggregator's mode. Files of version 1 and 2 are read alike.
 *
 * Since 2026-12-07 a family of counters, histograms or summaries may carry `starts` (when each
 * series began), still version 2: a reader before it ignores the key, and a file without it (a
 * process of an earlier release, in a rolling deploy) has every start unknown.
 */
import type { FamilyType } from '../families'
import { isNativeSnapshot, type NativeSnapshot } from '../native'
import type { GaugeMode } from './config'

/** The `format` of a process file; the archive's is this with `/archive`. */
export const FORMAT = 'fastify-netbox-metrics/multiprocess'
/** The version this package writes. */
export const VERSION = 2
/** Name of the archive holding the totals of processes that have exited. */
export const ARCHIVE_FILE = 'fnm-archive.json'
/** Name of the lock file guarding the archive. */
export const LOCK_FILE = 'fnm-archive.lock'
/** The second lock, taken to break a stale `LOCK_FILE`. */
export const BREAKER_FILE = 'fnm-archive.lock.break'
/** Temporary files, renamed over their target once written. */
export const TMP_PREFIX = '.fnm-tmp-'
/**
 * `fnm-<host>-<pid>-<process start>-<random>.json`: the host hash and the process start time
 * (Linux `/proc/<pid>/stat`, `0` elsewhere) make pid reuse harmless; the random part separates
 * two registries of one process.
 */
export const PROCESS_FILE = /^fnm-([0-9a-f]{8})-(\d+)-(\d+)-([0-9a-f]{12})\.json$/
/** A temporary file: `.fnm-tmp-<host>-<pid>-<process start>-...`. */
export const TMP_FILE = /^\.fnm-tmp-([0-9a-f]{8})-(\d+)-(\d+)-/

/** The name of the process file of the store `id`. */
export function processFileName (id: string): string {
  return `fnm-${id}.json`
}

/** The store id in a process file's name. */
export function idOfFile (name: string): string {
  return name.slice(4, -5)
}

/** A number as a file holds it: finite numbers as they are, NaN and ±Infinity as strings. */
export type StoredNumber = number | 'NaN' | '+Inf' | '-Inf'

/** A number as written: JSON has no NaN nor Infinity. */
export function encodeNumber (v: number): StoredNumber {
  return Number.isFinite(v) ? v : Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'
}

/** A value read back (`encodeNumber`'s inverse); version 1's `null` (a non-finite value) is NaN, anything else missing is 0. */
export function decodeNumber (v: unknown): number {
  if (typeof v === 'number') return v
  if (v === '+Inf') return Infinity
  if (v === '-Inf') return -Infinity
  return v === 'NaN' || v === null ? NaN : 0
}

/** A bucket count read back: a missing one (trailing zeros are left out) is 0. */
export function countOf (v: unknown): number {
  return typeof v === 'number' ? v : 0
}

/** One family in a snapshot. Each series is its label values followed by its numbers. */
export interface FamilySnapshot {
  name: string
  /** `summary`: an application's Summary, as its `_sum` and `_count` (no quantiles). */
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
   * left out (a missing count is 0); summary: `[...labelValues, sum, count]`. Values and sums
   * are `StoredNumber`s; an archive's sum can also be its exact partials (`number[]`).
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
  /**
   * Counters, histograms and summaries: when each series began (milliseconds since the epoch),
   * in the order of `series`, each as its difference from the previous known one (the first
   * from 0: series are mostly created one after the other, so the differences are short);
   * `null` when unknown (an application series first seen above zero; in the archive, a sum of
   * which a part's start was unknown). Absent: every start unknown (a file of an earlier
   * release). Written by `StartsWriter`, read by `StartsReader`.
   */
  starts?: Array<number | null>
}

/** One exemplar in a snapshot: `[classic bucket index, trace id, span id, value, timestamp ms]`. */
export type ExemplarSnapshot = [number, string, string, StoredNumber, number]

/**
 * A metric of a live process only, one series per process with a `pid` label: the client's
 * default metrics (`kind: 'process'`, one value per process, however many registries report it),
 * and application metrics of a type other than counter, gauge, histogram and summary (`kind:
 * 'gauge'`, summed over the registries of the process; in files of version 1, the application's
 * gauges too).
 */
export interface ForeignSnapshot {
  name: string
  help: string
  type: string
  /** Absent in files of earlier versions: `process`. */
  kind?: 'process' | 'gauge'
  values: Array<{ metricName?: string, labels: Record<string, string | number>, value: StoredNumber | null }>
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

/** Whether a parsed file has the shape of a snapshot (a torn or foreign file does not). */
export function wellFormed (x: unknown, archive: boolean): boolean {
  const o = x as Partial<ProcessSnapshot & ArchiveSnapshot> | null
  if (o === null || typeof o !== 'object' || o.format !== (archive ? `${FORMAT}/archive` : FORMAT) || !Array.isArray(o.families)) return false
  if (archive ? (o.merged === null || typeof o.merged !== 'object') : typeof o.id !== 'string') return false
  return o.families.every((f) => f !== null && typeof f === 'object' && typeof f.name === 'string' && Array.isArray(f.labelNames) && Array.isArray(f.series) && f.series.every(Array.isArray))
}

/** A file's text as a snapshot, or undefined when it is not a well-formed one. */
export function parseSnapshot<T extends ProcessSnapshot | ArchiveSnapshot> (text: string, archive: boolean): T | undefined {
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch {}
  return wellFormed(parsed, archive) ? parsed as T : undefined
}

/** A snapshot's text. Every number in it is written by `encodeNumber` already, so JSON keeps it. */
export function serializeSnapshot (snap: ProcessSnapshot | ArchiveSnapshot): string {
  return JSON.stringify(snap)
}

/** Whether the first bytes of a process file say it holds a final snapshot (`final` comes before the families). */
export function isFinalText (head: string): boolean {
  return head.includes('"final":true')
}

/**
 * The native buckets of row `r` of a family snapshot, its zero threshold filled in from the
 * family's (in place: a file is read once); undefined when it has none or they are malformed.
 */
export function nativeRow (f: FamilySnapshot, r: number): NativeSnapshot | undefined {
  const ns = Array.isArray(f.native) ? f.native[r] : undefined
  if (!Array.isArray(ns)) return undefined
  if (ns[1] === null) ns[1] = typeof f.nativeZeroThreshold === 'number' ? f.nativeZeroThreshold : NaN
  return isNativeSnapshot(ns) ? ns : undefined
}

/**
 * Writes a family's `starts`, one series after the other: each start as its difference from the
 * previous known one (the first from 0), `null` when unknown (NaN).
 */
export class StartsWriter {
  /** The family's `starts`, as written so far. */
  readonly starts: Array<number | null> = []
  private last = 0

  /** Appends the next series' start (milliseconds since the epoch; NaN when unknown). */
  add (ms: number): void {
    if (Number.isFinite(ms)) {
      this.starts.push(ms - this.last)
      this.last = ms
    } else this.starts.push(null)
  }
}

/** Reads a family's `starts` (`StartsWriter`'s), one row after the other from the first. */
export class StartsReader {
  private readonly starts: readonly unknown[] | undefined
  private row = 0
  private last = 0

  /** @param starts the family's `starts`; anything but an array: every start unknown */
  constructor (starts: unknown) {
    this.starts = Array.isArray(starts) ? starts : undefined
  }

  /** The next row's start, in milliseconds since the epoch; undefined when unknown, absent or malformed. */
  next (): number | undefined {
    const d = this.starts?.[this.row++]
    if (typeof d !== 'number' || !Number.isFinite(d)) return undefined
    this.last += d
    return this.last
  }
}

/** Every row's start of a family snapshot (`StartsReader` over its rows): for tests and tools. */
export function decodeStarts (f: FamilySnapshot): Array<number | undefined> {
  const reader = new StartsReader(f.starts)
  return f.series.map(() => reader.next())
}

/** A native snapshot as written: its zero threshold `null` when it is the family's. */
export function withSharedZeroThreshold (snap: NativeSnapshot, shared: number | undefined): Array<number | null> {
  const row: Array<number | null> = snap
  if (snap[1] === shared) row[1] = null
  return row
}
