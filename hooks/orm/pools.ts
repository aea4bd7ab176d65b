/**
 * Pools: the pool gauges, read when scraped from the current pools of an ORM (the write
 * connection's and each read replica's; MikroORM replaces them on `close()` / `reconnect()`), and
 * `db_new_connections_total`, from each pool's events (listeners attached once per pool).
 */
import type { MetricFamily } from '../../lib/families'
import type { MetricSet } from '../../lib/metrics'
import type { MikroOrmAccess, PoolStats } from './mikro-orm'
import type { Sink } from './sink'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** Pools whose new-connection listeners are attached, by any copy of this package in the process. */
const kPools = Symbol.for('fastify-netbox-metrics.orm-pools')
const POOLS_SEEN: WeakSet<object> = (globalThis as Any)[kPools] ?? ((globalThis as Any)[kPools] = new WeakSet())

/** The pools of one ORM, for the MetricSets (sinks) it reports to. */
export class PoolWatch {
  private readonly access: MikroOrmAccess
  private readonly sinks: Sink[]
  private readonly report: (err: unknown) => void

  /** `sinks` is the instrumentation's own array: sinks added later are counted into too. */
  constructor (access: MikroOrmAccess, sinks: Sink[], report: (err: unknown) => void) {
    this.access = access
    this.sinks = sinks
    this.report = report
  }

  /** The current pools (never connects). */
  async current (): Promise<Any[]> {
    if (!this.access.pools) return []
    const pools = await Promise.all(this.access.connections().map(async (c) => await this.access.poolOf(c)))
    return pools.filter((p) => p !== undefined && p !== null)
  }

  /** Attaches the new-connection listeners to a pool, once; its open connections are counted then. */
  attach (pool: Any): void {
    if (POOLS_SEEN.has(pool)) return
    POOLS_SEEN.add(pool)
    const sinks = this.sinks
    const open = this.access.openConnections(pool)
    for (const s of sinks) s.newConnections?.inc(open)
    this.access.onPoolEvents(pool,
      () => { for (const s of sinks) if (s.newConnections !== undefined) s.newConnections.value++ },
      () => { for (const s of sinks) if (s.newConnectionErrors !== undefined) s.newConnectionErrors.value++ })
  }

  /** Finds the current pools and attaches to them (after a connect). */
  refresh (): void {
    this.current().then((pools) => { for (const p of pools) this.attach(p) }, (err) => this.report(err))
  }

  /** A sink was added: pools already seen count their open connections for it alone. */
  seed (sink: Sink): void {
    this.current().then((pools) => {
      for (const pool of pools) {
        if (POOLS_SEEN.has(pool)) sink.newConnections?.inc(this.access.openConnections(pool))
        else this.attach(pool)
      }
    }, (err) => this.report(err))
  }

  /** Pool gauges now, summed over the write pool and the replicas' pools; undefined when none is connected. */
  async stats (): Promise<PoolStats | undefined> {
    let stats: PoolStats | undefined
    for (const pool of await this.current()) {
      this.attach(pool)
      const one = this.access.poolStats(pool)
      if (one === undefined) continue
      if (stats === undefined) stats = one
      else {
        stats.idle += one.idle
        stats.used += one.used
        stats.pending += one.pending
        stats.max += one.max
      }
    }
    return stats
  }
}

/** What the scrape-time collectors of a MetricSet read of one ORM. */
export interface PoolSource { readonly context: string, readonly vendor: string, readonly version: string, readonly pools: PoolWatch, readonly servesPools: boolean }

/** The `orm_info` collector of a MetricSet: one series per ORM attached to it. */
export function collectInfo (set: Set<PoolSource>): (family: MetricFamily<unknown>) => void {
  return function collectOrmInfo (family) {
    family.clear()
    for (const o of set) (family.child(o.context, o.vendor, o.version) as Any).set(1)
  }
}

/**
 * The pool-gauge collector of a MetricSet. Every pool is read first, then the families are
 * cleared and set with no `await` in between: a scrape that runs while another scrape's collector
 * awaits a pool (MikroORM 7's `getNativeClient()` is async) cannot find them cleared.
 */
export function collectPools (set: Set<PoolSource>, metrics: MetricSet): (family: MetricFamily<unknown>) => Promise<void> {
  return async function collectPoolGauges (family) {
    const read: Array<[PoolSource, PoolStats]> = []
    for (const o of set) {
      if (!o.servesPools) continue
      try {
        const stats = await o.pools.stats()
        if (stats !== undefined) read.push([o, stats])
      } catch {
        metrics.countError('collector')
      }
    }
    const max = metrics.get('dbPoolMax')
    family.clear()
    max.clear()
    for (const [o, stats] of read) {
      ;(family.child(o.context, o.vendor, 'idle') as Any).set(stats.idle)
      ;(family.child(o.context, o.vendor, 'used') as Any).set(stats.used)
      ;(family.child(o.context, o.vendor, 'pending') as Any).set(stats.pending)
      max.child(o.context, o.vendor).set(stats.max)
    }
  }
}
