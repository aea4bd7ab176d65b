/**
 * The shared-directory store of one registry in one process: its snapshots (on a timer, before
 * each scrape it serves, a final one at close or exit), the scrape that aggregates every file,
 * and the hand-over of its totals to the archive. The parts: `snapshot.ts` (what is written),
 * `format.ts` and `files.ts` (how), `aggregate.ts` (the sums), `archive.ts` (dead processes),
 * `exit.ts` (exit and signals), `defaults.ts` (which metrics describe one process).
 */
import { randomBytes } from 'node:crypto'
import { readdir, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { resolveClient, type PrometheusRegistry } from '../client'
import { registryResetMs, renderRegistryBuffer, trackStarts, type CollectErrorHandler, type ExpositionFormat, type RenderOptions } from '../exposition'
import { isMetricFamily } from '../families'
import { CATALOGUE, NATIVE_FAMILIES, type FamilyKey } from '../metrics'
import type { NativeHistogramConfig } from '../native'
import type { ServedStarts } from '../starts'
import { Aggregate } from './aggregate'
import { Archive } from './archive'
import { GAUGE_MODES, type GaugeMode, type MultiprocessConfig } from './config'
import { isDefaultMetric } from './defaults'
import { finalizeAtExit, forgetAtExit } from './exit'
import { checkDirectory, readSnapshotFile, ReadError, writeAtomicSync } from './files'
import { ARCHIVE_FILE, FORMAT, PROCESS_FILE, processFileName, serializeSnapshot, TMP_PREFIX, VERSION, type ArchiveSnapshot, type FamilySnapshot, type ForeignSnapshot, type ProcessSnapshot } from './format'
import { hostId, ownStart, processAlive } from './identity'
import { appFamilySnapshot, baselineOf, familySnapshot, foreignOf, type Baseline, type PromMetricValues } from './snapshot'

/** What a store needs. */
export interface StoreOptions {
  registry: PrometheusRegistry
  /** The app's client's `Registry` class, for the aggregate a scrape renders; default: the client that made `registry` (lib/client.ts). */
  registryClass?: new () => PrometheusRegistry
  config: MultiprocessConfig
  prefix: string
  /** Told about every failure inside the store (never thrown into the app). */
  onError: (component: string, err: unknown) => void
  /** This process's histogram buckets: a scrape renders every histogram with them. */
  buckets?: { readonly latency: readonly number[], readonly size: readonly number[] }
  /** This process's native histogram settings: a scrape renders native buckets with them. */
  nativeHistograms?: NativeHistogramConfig | null
}

/**
 * How an application gauge's prom-client `aggregator` combines it across live processes
 * (`omit`: left out); an unknown aggregator sums. Counters, histograms and summaries are summed
 * whatever their aggregator, except `omit`: a counter taken as the max or first of the live
 * processes would go down when a process exits.
 */
const AGGREGATOR_MODES: Readonly<Record<string, GaugeMode | 'omit'>> = Object.freeze({ sum: 'sum', first: 'latest', min: 'min', max: 'max', average: 'average', omit: 'omit' })

const STORES = new WeakMap<PrometheusRegistry, MultiprocessStore>()
/** Counters and histograms a closed store handed over, so a later store of the registry does not count them again. */
const HANDED_OVER = new WeakMap<PrometheusRegistry, Baseline>()

/** What a snapshot holds besides this package's families: the rest of the registry. */
interface RegistryParts {
  /** The application's metrics. */
  app: FamilySnapshot[]
  /** The client's default metrics, and app metrics of another type than the four, per process. */
  foreign: ForeignSnapshot[]
  /** Metrics with a `collect()` callback: the scraping process's own values, never written. */
  local: ForeignSnapshot[]
  /** The starts of `local`'s counters, histograms and summaries, by metric name and `seriesKey`. */
  localStarts: Map<string, ReadonlyMap<string, number>>
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
  private readonly registry: PrometheusRegistry
  private readonly registryClass: new () => PrometheusRegistry
  private readonly onError: (component: string, err: unknown) => void
  private readonly gaugeModes = new Map<string, GaugeMode>()
  private readonly bounds = new Map<string, readonly number[]>()
  private readonly native = new Map<string, NativeHistogramConfig>()
  private readonly host = hostId()
  private readonly pstart = ownStart()
  private readonly processKey: string
  private readonly startedAt = Date.now()
  private readonly archive: Archive
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
  /** The starts the last scrape served (`Aggregate.keepStarts`): no later at the next unless the sum went down. */
  private served: ServedStarts | undefined

  private constructor (opts: StoreOptions) {
    this.registry = opts.registry
    this.registryClass = opts.registryClass ?? resolveClient(opts.registry).Registry
    this.dir = opts.config.dir
    this.intervalMs = opts.config.flushIntervalMs
    this.onError = opts.onError
    this.id = `${this.host}-${process.pid}-${this.pstart}-${randomBytes(6).toString('hex')}`
    this.processKey = `${this.host}-${process.pid}-${this.pstart}`
    this.file = join(this.dir, processFileName(this.id))
    this.archive = new Archive({ dir: this.dir, host: this.host, pstart: this.pstart, id: this.id, tmpName: () => this.tmpName(), onError: (err) => { this.onError('multiprocess', err) } })
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
    finalizeAtExit(this)
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
   * Merges the files of dead processes into the archive (`Archive.maintain`); with `self`, this
   * closed store's own file too. Returns false when another live process held the lock.
   */
  maintain (self = false): boolean {
    return this.archive.maintain(self)
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
    forgetAtExit(this)
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
    forgetAtExit(this)
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

  /**
   * Reads the registry apart from this package's families: runs the scrape-time collectors of
   * ours (all of them for a scrape; on the timer only those of the summed and deduplicated
   * gauges, which are cheap), the client's default metrics, and the application's metrics;
   * those with a `collect()` callback only for a scrape. Which is which: `defaults.ts`. Each
   * read of an application counter, histogram or summary updates its starts (`trackStarts`),
   * written with it.
   */
  private async readRegistry (forScrape: boolean, onCollectError: CollectErrorHandler | undefined, baseline: Baseline | undefined): Promise<RegistryParts> {
    const metrics = this.registry.getMetricsAsArray() as unknown[]
    const parts: RegistryParts = { app: [], foreign: [], local: [], localStarts: new Map() }
    const resetMs = registryResetMs(metrics)
    const read = await Promise.all(metrics.map(async (m) => {
      const name = (m as { name?: string }).name ?? '(unnamed)'
      try {
        if (isMetricFamily(m)) {
          if (m.collect !== undefined && (forScrape || (m.type === 'gauge' && this.gaugeModes.get(m.name) !== 'latest'))) await m.prepare()
          return undefined
        }
        const metric = m as { collect?: unknown, aggregator?: unknown, labelNames?: unknown, get: () => Promise<PromMetricValues> }
        if (isDefaultMetric(metric)) {
          const got = await metric.get()
          return (): void => { parts.foreign.push(foreignOf(got, 'process')) }
        }
        if (typeof metric.collect === 'function') {
          if (!forScrape) return undefined
          const collectedMs = Date.now()
          const got = await metric.get()
          const starts = trackStarts(this.registry, m as object, got, collectedMs, resetMs)
          return (): void => { parts.local.push(foreignOf(got, 'gauge')); parts.localStarts.set(got.name, starts) }
        }
        const mode = AGGREGATOR_MODES[String(metric.aggregator)] ?? 'sum'
        if (mode === 'omit') return undefined
        const collectedMs = Date.now()
        const got = await metric.get()
        const type = String(got.type)
        // Another type (a hand-made metric object, `untyped`): per live process, as it is.
        if (type !== 'counter' && type !== 'gauge' && type !== 'histogram' && type !== 'summary') return (): void => { parts.foreign.push(foreignOf(got, 'gauge')) }
        const starts = type === 'gauge' ? undefined : trackStarts(this.registry, m as object, got, collectedMs, resetMs)
        return (): void => { parts.app.push(appFamilySnapshot(metric, got, mode, baseline?.get(got.name), starts)) }
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
  private async flushParts (forScrape: boolean, onCollectError?: CollectErrorHandler): Promise<{ snap: ProcessSnapshot, local: ForeignSnapshot[], localStarts: RegistryParts['localStarts'] }> {
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
      return { snap, local: parts.local, localStarts: parts.localStarts }
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
      await writeFile(tmp, serializeSnapshot(snap))
      await rename(tmp, this.file)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  /** Writes a file atomically; `durable` (final snapshots): fsynced before the rename. */
  private writeSync (snap: ProcessSnapshot, path = this.file, durable = false): void {
    writeAtomicSync(this.dir, this.tmpName(), path, serializeSnapshot(snap), durable)
  }

  // ----- scrape

  /**
   * The exposition of every process sharing the directory. Order matters for exactness: this
   * process's snapshot is written first (so a later scrape of another process sees at least what
   * this one reports), then the other process files are read, then the archive, and a file whose
   * id the archive lists is skipped (it was merged while we read). A closed store reports no
   * snapshot of its own: its final one is in its file or already in the archive. Counters,
   * histograms and summaries carry their starts (`Aggregate.keepStarts`); OpenMetrics `_created`
   * samples with `options.created`.
   */
  async render (format: 'prometheus' | 'openmetrics', onCollectError?: CollectErrorHandler, options?: RenderOptions): Promise<string> {
    return (await this.renderBuffer(format, onCollectError, options)).toString('utf8')
  }

  /** `render()` as bytes, in any exposition format (protobuf included). */
  async renderBuffer (format: ExpositionFormat, onCollectError?: CollectErrorHandler, options?: RenderOptions): Promise<Buffer> {
    let own: { snap: ProcessSnapshot, local: ForeignSnapshot[], localStarts: RegistryParts['localStarts'] } | undefined
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
    const ownName = processFileName(this.id)
    const onReadError = (err: unknown): void => { this.onError('multiprocess', err) }
    const files = await Promise.all(names.filter((n) => PROCESS_FILE.test(n) && (own === undefined || n !== ownName)).map(async (n) => await readSnapshotFile<ProcessSnapshot>(this.dir, n, false, onReadError)))
    const archive = await readSnapshotFile<ArchiveSnapshot>(this.dir, ARCHIVE_FILE, true, (err) => {
      if (err instanceof ReadError) this.archive.suspect = true
      onReadError(err)
    })
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
    this.served = agg.keepStarts(this.served)
    const defaults = (this.registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels
    return await renderRegistryBuffer(agg.toRegistry(defaults, this.registryClass, own?.localStarts), format, onCollectError, options)
  }

  /** Gauges of a process count while it runs and its heartbeat is fresh. */
  private isLive (f: ProcessSnapshot, now: number): boolean {
    if (f.final) return false
    if (now - f.heartbeat > Math.max(5 * (f.intervalMs ?? this.intervalMs), 10_000)) return false
    return f.host !== this.host || processAlive(f.pid, f.pstart)
  }
}
