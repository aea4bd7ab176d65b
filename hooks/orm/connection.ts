/**
 * The connection wrappers: how statements and transactions are seen, whatever the `debug`,
 * logger or `loggerFactory` settings.
 *
 * Each connection instance (write connection and read replicas) gets one layer between it and
 * its class's prototype: an object that inherits from that prototype and defines `execute`,
 * `stream`, `begin`, `commit`, `rollback` and `connect`. Each of them looks the method up on the
 * prototype **when it is called** and calls that, so a later patch of the class (a test spy on
 * `AbstractSqlConnection.prototype.execute`, an APM agent) still runs; a later patch of the
 * instance itself sits in front of the layer and calls it (or not) as it chooses. The instance
 * gets no own property and no symbol: its own keys, its class (`instanceof`, `constructor`) and
 * every other method stay as they were; only `Object.getPrototypeOf(conn)` is the layer. A
 * method the instance already had as an own property when the ORM was attached (an earlier
 * instance patch) is wrapped in place, calling that property.
 */
import { monotonicMs } from '../../lib/clock'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** What the wrappers report; each call is guarded by the caller (it never throws into the ORM). */
export interface ConnectionObserver {
  /** A statement ended: `res` when it succeeded, `err` when it failed; `ctx` is its transaction, if any. */
  statement: (conn: Any, query: unknown, ctx: Any, start: number, res: unknown, err: unknown) => void
  /** A transaction (or a savepoint, when `parent` is set) began. */
  began: (trx: Any, parent: Any) => void
  /** A transaction or savepoint ended: committed, or not (rolled back, or its COMMIT refused with `err`). */
  ended: (ctx: Any, committed: boolean, err: unknown) => void
  /** The connection (re)connected: its pool may be new. */
  connected: (conn: Any) => void
}

/** Connections wrapped by any copy of this package in the process (a second copy leaves them alone). */
const kWrapped = Symbol.for('fastify-netbox-metrics.orm-connections')
const wrapped: WeakSet<object> = (globalThis as Any)[kWrapped] ?? ((globalThis as Any)[kWrapped] = new WeakSet())

/**
 * Puts the wrapper layer on one connection, once; false when it already has one. `observer`
 * receives every statement and transaction of this connection from then on.
 */
export function observeConnection (conn: Any, observer: ConnectionObserver): boolean {
  if (conn === undefined || conn === null || wrapped.has(conn)) return false
  wrapped.add(conn)
  const base = Object.getPrototypeOf(conn)
  const layer = Object.create(base)
  const own: Record<string, Any> = {}
  // What is there now: the instance's own property (wrapped in place), else the prototype's at call time.
  const isOwn = (name: string): boolean => Object.prototype.hasOwnProperty.call(conn, name) && typeof conn[name] === 'function'
  const target = (name: string, fn: Any): void => {
    if (isOwn(name)) {
      own[name] = conn[name]
      Object.defineProperty(conn, name, { ...Object.getOwnPropertyDescriptor(conn, name), value: fn })
    } else layer[name] = fn
  }
  const original = (name: string): Any => own[name] ?? base[name]

  target('execute', function metricsExecute (this: Any) {
    // (query, params, method, ctx, loggerContext) in 6 and 7; the arguments are passed on as given.
    const start = monotonicMs()
    const query: unknown = arguments[0]
    const ctx: unknown = arguments[3]
    const self = this
    return original('execute').apply(this, arguments).then(function onResult (res: unknown) {
      observer.statement(self, query, ctx, start, res, undefined)
      return res
    }, function onError (err: unknown) {
      observer.statement(self, query, ctx, start, undefined, err)
      throw err
    })
  })
  if (typeof conn.stream === 'function') {
    // MikroORM 7's em.stream() / qb.stream(): (query, params, ctx, ...), rows yielded as they come;
    // one statement, observed when the iteration ends (done, left early, or failed).
    target('stream', async function * metricsStream (this: Any, ...args: unknown[]) {
      const start = monotonicMs()
      let failure: unknown
      try {
        return yield * original('stream').apply(this, args)
      } catch (err) {
        failure = err ?? new Error('stream failed')
        throw err
      } finally {
        observer.statement(this, args[0], args[2], start, undefined, failure)
      }
    })
  }
  target('begin', async function metricsBegin (this: Any, ...args: Any[]) {
    const trx = await original('begin').apply(this, args)
    observer.began(trx, args[0]?.ctx)
    return trx
  })
  target('commit', async function metricsCommit (this: Any, ...args: Any[]) {
    const ctx = args[0]
    const rolledBack = ctx?.isRolledBack === true
    let res: unknown
    try {
      res = await original('commit').apply(this, args)
    } catch (err) {
      observer.ended(ctx, false, err)
      throw err
    }
    observer.ended(ctx, !rolledBack, undefined)
    return res
  })
  target('rollback', async function metricsRollback (this: Any, ...args: Any[]) {
    try {
      return await original('rollback').apply(this, args)
    } finally {
      observer.ended(args[0], false, undefined)
    }
  })
  if (typeof conn.connect === 'function') {
    target('connect', function metricsConnect (this: Any, ...args: unknown[]) {
      const r = original('connect').apply(this, args)
      Promise.resolve(r).then(() => observer.connected(conn), () => {})
      return r
    })
  }
  Object.setPrototypeOf(conn, layer)
  return true
}
