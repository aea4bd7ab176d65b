/**
 * The instrumentation of one MikroORM instance: what its connections and flushes report, turned
 * into counts for every MetricSet (sink) it is attached to.
 *
 * Statements of a flush are told apart from native writes by their transaction: the one a flush
 * opens (marked in `afterTransactionStart` while its unit of work is flushing), or the caller's
 * own transaction while a flush of its unit of work is in progress. "In progress" is asked of the
 * unit of work itself (it holds change sets or collection updates from computing them until the
 * cleanup MikroORM runs in a `finally`), so a flush that fails before sending anything (a missing
 * required property, a throwing hook) leaves no mark behind. A flush that runs in no transaction
 * at all (`implicitTransactions: false`) is counted from its statements alone. So each write is
 * counted once.
 */
import { monotonicMs } from '../../lib/clock'
import type { MetricSet } from '../../lib/metrics'
import { observeConnection } from './connection'
import { exceptionName, isConnectError, isSqlState } from './db-errors'
import { Ledger } from './ledger'
import { isInternal } from './migrations'
import { MikroOrmAccess } from './mikro-orm'
import { PoolWatch } from './pools'
import { Sink } from './sink'
import { classify, keywordStart, OP_INSERT, OP_OTHER, OP_SELECT, OP_UPDATE, rowsAffected, statementText, writeTable } from './sql'
import { DELETE, forEachWrite, INSERT, UPDATE, UPSERT, type Tally } from './writes'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** A transaction context: an object, or a function object (knex's transactions are callable). */
function isObject (v: unknown): v is object {
  return v !== null && (typeof v === 'object' || typeof v === 'function')
}

/** Instrumentation of one MikroORM instance, shared by every plugin (MetricSet) attached to it. */
export class OrmInstrumentation {
  readonly access: MikroOrmAccess
  readonly context: string
  readonly vendor: string
  readonly version: string
  readonly sinks: Sink[] = []
  readonly pools: PoolWatch
  readonly servesPools: boolean
  /** The MetricsSubscriber that counts this ORM's flushes (others in its config are ignored for it). */
  subscriber: object | undefined
  private readonly ledger = new Ledger()
  /** Transactions a flush opened. */
  private readonly flushTrx = new WeakSet<object>()
  /** Callers' transactions a flush runs in, with the flushing unit of work. */
  private readonly flushingCtx = new WeakMap<object, object>()
  /** Units of work whose flush is running: true once the flush opened its own transaction. */
  private readonly flushingUows = new WeakMap<object, boolean>()

  constructor (orm: Any) {
    this.access = new MikroOrmAccess(orm)
    this.context = this.access.context
    this.vendor = this.access.vendor
    this.version = this.access.version
    this.servesPools = this.access.pools
    this.pools = new PoolWatch(this.access, this.sinks, (err) => this.reportError(err))
    if (!this.access.statements) return
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this
    const observer = {
      statement (conn: Any, query: unknown, ctx: Any, start: number, res: unknown, err: unknown): void {
        if (isInternal()) return
        try {
          self.statement(query, ctx, start, res, err)
        } catch (e) {
          self.reportError(e)
        }
      },
      began (trx: Any, parent: Any): void {
        try {
          if (isObject(trx)) self.ledger.begin(trx, isObject(parent) ? parent : undefined)
        } catch (e) {
          self.reportError(e)
        }
      },
      ended (ctx: Any, committed: boolean, err: unknown): void {
        try {
          self.ended(ctx, committed, err)
        } catch (e) {
          self.reportError(e)
        }
      },
      connected (): void {
        self.pools.refresh()
      }
    }
    for (const c of this.access.connections()) observeConnection(c, observer)
  }

  /** Reports an error caught inside the package to every sink (counted, logged once). */
  reportError (err: unknown): void {
    for (const s of this.sinks) s.onInternalError('orm', err)
  }

  /** Adds a MetricSet to report to; false when it was already there. */
  addSink (metrics: MetricSet, onInternalError: (component: string, err: unknown) => void): Sink | undefined {
    if (this.sinks.some((s) => s.metrics === metrics)) return undefined
    const sink = new Sink(metrics, this.context, this.vendor, { statements: this.access.statements, pools: this.access.pools }, onInternalError)
    this.sinks.push(sink)
    if (this.access.pools) this.pools.seed(sink)
    return sink
  }

  /** Stops reporting to a MetricSet. */
  removeSink (metrics: MetricSet): void {
    const i = this.sinks.findIndex((s) => s.metrics === metrics)
    if (i >= 0) this.sinks.splice(i, 1)
  }

  /** A statement finished (res) or failed (err). */
  private statement (query: unknown, ctx: Any, start: number, res: unknown, err: unknown): void {
    const seconds = (monotonicMs() - start) / 1000
    const text = statementText(query)
    const at = keywordStart(text)
    const op = classify(text, at)
    const sinks = this.sinks
    if (err !== undefined) {
      const type = exceptionName(err)
      const connectFailure = this.access.major >= 7 && isConnectError(err)
      for (let i = 0; i < sinks.length; i++) {
        const s = sinks[i]
        s.execute!.value++
        s.observeDuration(op, seconds)
        s.error(type)
        if (connectFailure && s.newConnectionErrors !== undefined) s.newConnectionErrors.value++
      }
      // PostgreSQL refused a statement (the error carries its SQLSTATE, not a client-side code):
      // the transaction is aborted from here on.
      if (ctx !== undefined && ctx !== null && this.access.abortsOnError && isSqlState((err as { code?: unknown } | null)?.code)) this.ledger.statementFailed(ctx)
      return
    }
    for (let i = 0; i < sinks.length; i++) {
      const s = sinks[i]
      s.execute!.value++
      s.observeDuration(op, seconds)
    }
    if (op === OP_SELECT || op === OP_OTHER) return
    // Writes: those of a flush are counted from its change sets, not here.
    if (ctx !== undefined && ctx !== null && (this.flushTrx.has(ctx) || this.flushRunsIn(ctx))) return
    const table = writeTable(at === 0 ? text : text.slice(at), op)
    if (table === undefined) return
    const entity = this.access.entityOfTable(table)
    if (entity === undefined) return
    const n = rowsAffected(res)
    if (n <= 0) return
    this.record(op === OP_INSERT ? INSERT : op === OP_UPDATE ? UPDATE : DELETE, entity, n, ctx)
  }

  /** True while a flush runs in the caller's transaction `ctx`; the mark is dropped once that flush is over, whichever way it ended. */
  private flushRunsIn (ctx: object): boolean {
    const uow = this.flushingCtx.get(ctx)
    if (uow === undefined) return false
    if (MikroOrmAccess.flushInProgress(uow)) return true
    this.flushingCtx.delete(ctx)
    return false
  }

  /** Counts a write now, or holds it in its open transaction. */
  private record (kind: number, entity: string, n: number, ctx: unknown): void {
    if (ctx !== undefined && ctx !== null && this.ledger.hold(ctx as object, kind, entity, n)) return
    for (let i = 0; i < this.sinks.length; i++) this.sinks[i].write(kind, entity, n)
  }

  /**
   * A transaction or savepoint ended. A COMMIT that fails with a SQLSTATE was refused by the
   * server (a deferred constraint, a serialization failure): PostgreSQL has then ended the
   * transaction rolled back, and it counts as a rollback, whether or not the app calls
   * `rollback()` afterwards (that call finds it ended and counts nothing). A COMMIT that fails
   * otherwise (a throwing `beforeTransactionCommit` subscriber, a lost connection) leaves the
   * outcome to what follows: the app's rollback, or nothing.
   */
  private ended (ctx: Any, committed: boolean, err: unknown): void {
    if (!isObject(ctx)) return
    if (err !== undefined && !isSqlState((err as { code?: unknown } | null)?.code)) return
    this.flushingCtx.delete(ctx)
    const { outcome, writes } = this.ledger.end(ctx, committed)
    if (outcome === undefined) return
    for (const s of this.sinks) (outcome === 'commit' ? s.commits! : s.rollbacks!).value++
    if (writes !== undefined) forEachWrite(writes, (kind, entity, n) => { for (const s of this.sinks) s.write(kind, entity, n) })
  }

  /** Subscriber: a flush is starting. */
  beforeFlush (em: Any, uow: Any): void {
    if (uow !== undefined && uow !== null) this.flushingUows.set(uow, false)
    const ctx = MikroOrmAccess.transactionOf(em)
    if (ctx !== undefined && uow !== undefined && uow !== null) this.flushingCtx.set(ctx, uow)
  }

  /** Subscriber: a transaction started; the one a flush opens is marked. */
  transactionStarted (uow: Any, trx: Any): void {
    if (uow === undefined || uow === null || trx === undefined || trx === null) return
    if (this.flushingUows.has(uow) && MikroOrmAccess.flushInProgress(uow)) {
      this.flushTrx.add(trx)
      this.flushingUows.set(uow, true)
    }
  }

  /** Subscriber: a transaction rolled back (a failed flush ends there). */
  transactionRolledBack (uow: Any): void {
    if (uow !== undefined && uow !== null) this.flushingUows.delete(uow)
  }

  /** Subscriber: a flush succeeded (its own transaction, if any, has committed); `counts` are its writes. */
  afterFlush (em: Any, uow: Any, counts: Tally): void {
    let openedTrx: boolean | undefined
    if (uow !== undefined && uow !== null) {
      openedTrx = this.flushingUows.get(uow)
      this.flushingUows.delete(uow)
    }
    const ctx = MikroOrmAccess.transactionOf(em)
    if (ctx !== undefined) this.flushingCtx.delete(ctx)
    // A flush outside any transaction (`implicitTransactions: false`): each statement was
    // committed as it ran and counted then, by rows, like a native write.
    if (openedTrx === false && ctx === undefined && this.access.statements) return
    forEachWrite(counts, (kind, entity, n) => this.record(kind, entity, n, ctx))
  }

  /** Subscriber: one entity was upserted. */
  upserted (em: Any, entity: string): void {
    this.record(UPSERT, entity, 1, MikroOrmAccess.transactionOf(em))
  }
}
