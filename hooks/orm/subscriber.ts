/**
 * `MetricsSubscriber`, the MikroORM event subscriber that counts per-entity writes of the unit
 * of work. One subscriber may sit in the config of several ORMs (a shared base config): each
 * event finds its ORM from its own arguments (`args.em`, whose driver belongs to one ORM), never
 * from a back-pointer. Only after* and flush hooks are defined: MikroORM registers every event
 * name found on the object, and before{Create,Update,...} listeners make it diff each entity.
 */
import { MikroOrmAccess } from './mikro-orm'
import type { OrmInstrumentation } from './instrumentation'
import { addWrite, mergeTally, UPSERT, type Tally } from './writes'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

const kBrand = Symbol.for('fastify-netbox-metrics.MetricsSubscriber')

/** Process-wide (shared by copies of this package): each ORM's instrumentation, by ORM and by driver, and counts held for ORMs not yet attached. */
interface OrmRegistry {
  readonly byOrm: WeakMap<object, OrmInstrumentation>
  readonly byDriver: WeakMap<object, OrmInstrumentation>
  /** Writes counted before a plugin was given the ORM (by driver): the subscriber that held them, and them. */
  readonly held: WeakMap<object, { subscriber: object, tally: Tally }>
}
const kRegistry = Symbol.for('fastify-netbox-metrics.orm-registry')
/** The process-wide ORM registry. */
export const ormRegistry: OrmRegistry = (globalThis as Any)[kRegistry] ?? ((globalThis as Any)[kRegistry] = { byOrm: new WeakMap(), byDriver: new WeakMap(), held: new WeakMap() })

/**
 * MikroORM event subscriber counting per-entity writes of the unit of work. Put it in the ORM
 * config (`subscribers: [new MetricsSubscriber()]`, the complete way: forks made with
 * `freshEventManager` see it too) and register the plugin with `{ orm }`; or let the plugin add
 * one. Until a plugin is given the ORM, it holds that ORM's counts and hands them over then.
 * One instance may serve several ORMs. It never throws into a flush.
 */
export class MetricsSubscriber {
  /** Brand, so that a copy of this class loaded twice is still recognised. */
  readonly [kBrand] = true

  /** The instrumentation of the event's ORM when this subscriber counts for it; null: ignore; undefined: not attached yet (hold). */
  private target (em: unknown): OrmInstrumentation | null | undefined {
    const driver = MikroOrmAccess.driverOf(em)
    if (driver === undefined) return null
    const instr = ormRegistry.byDriver.get(driver)
    if (instr === undefined) return undefined
    return instr.subscriber === this && instr.access.flushes ? instr : null
  }

  private hold (em: unknown, fill: (tally: Tally) => void): void {
    const driver = MikroOrmAccess.driverOf(em)
    if (driver === undefined) return
    let held = ormRegistry.held.get(driver)
    if (held === undefined) {
      held = { subscriber: this, tally: new Map() }
      ormRegistry.held.set(driver, held)
    }
    // A second MetricsSubscriber in the same ORM: one of them counts.
    if (held.subscriber === this) fill(held.tally)
  }

  /** @internal */
  beforeFlush (args: { em: unknown, uow: unknown }): void {
    try {
      this.target(args.em)?.beforeFlush(args.em, args.uow)
    } catch (err) {
      this.fail(args.em, err)
    }
  }

  /** @internal */
  afterFlush (args: { em: unknown, uow: unknown }): void {
    try {
      const instr = this.target(args.em)
      if (instr === null) return
      const counts = MikroOrmAccess.flushTally(args.uow)
      if (instr !== undefined) instr.afterFlush(args.em, args.uow, counts)
      else this.hold(args.em, (tally) => mergeTally(tally, counts))
    } catch (err) {
      this.fail(args.em, err)
    }
  }

  /** @internal */
  afterUpsert (args: { em: unknown, meta: { className: string } }): void {
    try {
      const instr = this.target(args.em)
      if (instr === null) return
      if (instr !== undefined) instr.upserted(args.em, args.meta.className)
      else this.hold(args.em, (tally) => addWrite(tally, UPSERT, args.meta.className, 1))
    } catch (err) {
      this.fail(args.em, err)
    }
  }

  /** @internal */
  afterTransactionStart (args: { em: unknown, uow?: unknown, transaction?: unknown }): void {
    try {
      this.target(args.em)?.transactionStarted(args.uow, args.transaction)
    } catch (err) {
      this.fail(args.em, err)
    }
  }

  /** @internal */
  afterTransactionRollback (args: { em: unknown, uow?: unknown }): void {
    try {
      this.target(args.em)?.transactionRolledBack(args.uow)
    } catch (err) {
      this.fail(args.em, err)
    }
  }

  private fail (em: unknown, err: unknown): void {
    try {
      const driver = MikroOrmAccess.driverOf(em)
      const instr = driver === undefined ? undefined : ormRegistry.byDriver.get(driver)
      instr?.reportError(err)
    } catch {}
  }
}

/** True for a MetricsSubscriber of any copy of this package. */
export function isMetricsSubscriber (s: unknown): s is MetricsSubscriber {
  return s !== null && typeof s === 'object' && (s as Record<symbol, unknown>)[kBrand] === true
}
