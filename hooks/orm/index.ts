/**
 * The ORM and database families for MikroORM 6 (knex) and 7 (kysely), from one build: wiring
 * only. Where each number comes from (docs/orm.md):
 * - per-entity writes of the unit of work: `MetricsSubscriber` (subscriber.ts), from the change
 *   sets of a successful flush (writes.ts) and `afterUpsert`;
 * - statements, errors, durations, native and QueryBuilder writes, transactions: the connection
 *   wrappers (connection.ts), classified by sql.ts and db-errors.ts, with writes held per
 *   transaction until the top-level COMMIT (ledger.ts), in instrumentation.ts;
 * - pools and new connections: pools.ts; the migration gauges: migrations.ts and lib/migrations.ts;
 * - every MikroORM internal read: mikro-orm.ts, probed once per ORM; what is missing is left out,
 *   counted once in `metrics_errors_total{component="orm"}` and named in one warning.
 */
import type { MetricSet } from '../../lib/metrics'
import { DEFAULT_MIGRATIONS_TTL_MS, registerMigrationGauges } from '../../lib/migrations'
import { OrmInstrumentation } from './instrumentation'
import { migrationView } from './migrations'
import { collectInfo, collectPools, type PoolSource } from './pools'
import { isMetricsSubscriber, MetricsSubscriber, ormRegistry } from './subscriber'

export { MetricsSubscriber } from './subscriber'
export { OPERATIONS } from './sql'
export { UNKNOWN_DB_ERROR, exceptionName } from './db-errors'
export { OrmInstrumentation } from './instrumentation'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** What the scrape-time collectors of one MetricSet read: every ORM attached to it. */
const ATTACHED = new WeakMap<MetricSet, Set<PoolSource>>()

/** True when the value looks like a MikroORM instance (what the `orm` option accepts). */
export function isMikroOrm (value: unknown): boolean {
  const v = value as Any
  return v !== null && typeof v === 'object' && typeof v.em?.getEventManager === 'function' &&
    typeof v.em?.getDriver === 'function' && typeof v.config?.get === 'function' && typeof v.getMetadata === 'function'
}

function instrumentationOf (orm: Any): OrmInstrumentation {
  let instr = ormRegistry.byOrm.get(orm)
  if (instr === undefined) {
    instr = new OrmInstrumentation(orm)
    ormRegistry.byOrm.set(orm, instr)
    ormRegistry.byDriver.set(orm.em.getDriver(), instr)
  }
  return instr
}

/**
 * Instruments a MikroORM instance for a MetricSet: probes what it exposes (warning once through
 * `onUnsupported` when something is missing), wraps its connections once, picks the
 * `MetricsSubscriber` that counts its flushes (the one in its config, else a new one registered),
 * and adds the pool and info collectors and the migration gauges (`lib/migrations.ts`: asked at
 * scrape time, cached `migrationsTtlMs`, absent when the ORM has no Migrator). Returns a function
 * that stops reporting to this MetricSet.
 */
export function attachOrm (orm: unknown, metrics: MetricSet, onInternalError: (component: string, err: unknown) => void, migrationsTtlMs: number = DEFAULT_MIGRATIONS_TTL_MS, onUnsupported?: (message: string) => void): () => void {
  const o = orm as Any
  const instr = instrumentationOf(o)
  const sink = instr.addSink(metrics, onInternalError)
  if (sink !== undefined && instr.access.missing.length > 0) {
    // Once per ORM and MetricSet: one error counted, one warning.
    metrics.countError('orm')
    onUnsupported?.(`fastify-netbox-metrics: MikroORM ${instr.version} (context "${instr.context}") lacks ${instr.access.missing.join('; ')}`)
  }
  let set = ATTACHED.get(metrics)
  if (set === undefined) {
    set = new Set()
    ATTACHED.set(metrics, set)
    metrics.get('ormInfo', collectInfo(set))
    metrics.get('dbPoolConnections', collectPools(set, metrics))
    metrics.get('dbPoolMax')
  }
  set.add(instr)
  try {
    registerMigrationGauges(metrics, migrationView(o), instr.context, migrationsTtlMs)
  } catch (err) {
    onInternalError('orm', err)
  }
  if (instr.subscriber === undefined) chooseSubscriber(o, instr)
  const attachedTo = set
  return function detachOrm () {
    instr.removeSink(metrics)
    attachedTo.delete(instr)
  }
}

/** Binds the ORM to the MetricsSubscriber found in its config or event manager (registering one if none), and takes over its held counts. */
function chooseSubscriber (o: Any, instr: OrmInstrumentation): void {
  const events = o.em.getEventManager()
  const found: object[] = []
  const configured = o.config.get('subscribers') as Iterable<unknown> | undefined
  for (const s of configured ?? []) if (isMetricsSubscriber(s) && !found.includes(s)) found.push(s)
  if (typeof events.getSubscribers === 'function') {
    for (const s of events.getSubscribers() as Iterable<unknown>) if (isMetricsSubscriber(s) && !found.includes(s)) found.push(s)
  }
  const driver = o.em.getDriver()
  const held = ormRegistry.held.get(driver)
  ormRegistry.held.delete(driver)
  if (found.length === 0) {
    const sub = new MetricsSubscriber()
    events.registerSubscriber(sub)
    // Also in the config, so that forks with `freshEventManager` get it.
    try {
      if (configured instanceof Set) configured.add(sub)
      else if (Array.isArray(configured)) configured.push(sub)
    } catch {}
    found.push(sub)
  }
  instr.subscriber = held !== undefined && found.includes(held.subscriber) ? held.subscriber : found[0]
  if (held !== undefined && instr.subscriber === held.subscriber) instr.afterFlush(undefined, undefined, held.tally)
}
