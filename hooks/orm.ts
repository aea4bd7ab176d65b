/**
 * Where the ORM and database families are observed, for MikroORM 6 (knex) and 7 (kysely) from one
 * build. Nothing is imported from `@mikro-orm/*` at run time (type-only imports would do, but the
 * shapes used here are duck-typed), so a v6 CommonJS app and a v7 ESM app load the same file.
 *
 * Where each number comes from (see `docs/orm.md` and the verified hook points):
 * - per-entity writes of the unit of work: `MetricsSubscriber.afterFlush` (the change sets, once
 *   per entity) and `afterUpsert`;
 * - native and QueryBuilder writes, statements, errors (typed by SQLSTATE), durations: a wrapper
 *   of the one `execute()` method of each connection instance, through which every statement
 *   MikroORM sends passes, whatever the `debug`, logger or `loggerFactory` settings;
 * - transactions: wrappers of the connection's `begin` / `commit` / `rollback`, which see
 *   savepoints too (MikroORM 6 fires no events for them). Writes made inside a transaction are
 *   held by that transaction and counted when the top-level transaction commits (a savepoint
 *   that commits hands them to its parent; a rollback drops them), because after* hooks and the
 *   statements themselves happen before the COMMIT. On PostgreSQL a statement that fails aborts
 *   its transaction (until a savepoint rollback), and the COMMIT of an aborted transaction is
 *   answered with ROLLBACK: such a transaction counts as a rollback;
 * - pools: read at scrape time from the current pool (knex/tarn in v6, `pg.Pool` in v7), which
 *   is replaced on `orm.close()` / reconnect; new-connection listeners are attached once per pool.
 *
 * Statements of a flush are told apart from native writes by their transaction: the one a flush
 * opens (marked in `afterTransactionStart` while its unit of work is flushing), or the caller's
 * own transaction while a flush runs in it. A flush that runs in no transaction at all
 * (`implicitTransactions: false`) is counted from its statements alone. So each write is counted
 * once.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { monotonicMs } from '../lib/clock'
import { activeSpanTrace } from '../lib/exemplars'
import { fileURLToPath } from 'node:url'
import type { CounterSeries, HistogramSeries, MetricFamily } from '../lib/families'
import type { MetricSet } from '../lib/metrics'
import { DEFAULT_MIGRATIONS_TTL_MS, registerMigrationGauges } from '../lib/migrations'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

const kBrand = Symbol.for('fastify-netbox-metrics.MetricsSubscriber')
const kInstrumentation = Symbol.for('fastify-netbox-metrics.orm-instrumentation')
const kPatched = Symbol.for('fastify-netbox-metrics.orm-connection')
/** On a patched MikroORM 6 connection: the knex pool its new-connection listeners are on. */
const kPool = Symbol('fastify-netbox-metrics.orm-connection-pool')

/** Write kinds, indexes of the per-entity counters. */
const INSERT = 0
const UPDATE = 1
const DELETE = 2
const UPSERT = 3
const WRITE_FAMILIES = ['ormInserts', 'ormUpdates', 'ormDeletes', 'ormUpserts'] as const
const CHANGE_SET_KIND: Readonly<Record<string, number>> = Object.freeze({ create: INSERT, update: UPDATE, update_early: UPDATE, delete: DELETE, delete_early: DELETE })

/** The `operation` label values of `db_query_duration_seconds`. */
export const OPERATIONS = Object.freeze(['select', 'insert', 'update', 'delete', 'other'] as const)
const OP_SELECT = 0
const OP_INSERT = 1
const OP_UPDATE = 2
const OP_DELETE = 3
const OP_OTHER = 4

/** The `type` of `db_errors_total` when the SQLSTATE is not one MikroORM names. */
export const UNKNOWN_DB_ERROR = 'DatabaseError'

/** PostgreSQL SQLSTATE → MikroORM exception name (PostgreSqlExceptionConverter's table, and classes). */
const PG_SQLSTATE: Readonly<Record<string, string>> = Object.freeze({
  40001: 'DeadlockException',
  '40P01': 'DeadlockException',
  23502: 'NotNullConstraintViolationException',
  23503: 'ForeignKeyConstraintViolationException',
  23505: 'UniqueConstraintViolationException',
  23514: 'CheckConstraintViolationException',
  42601: 'SyntaxErrorException',
  42702: 'NonUniqueFieldNameException',
  42703: 'InvalidFieldNameException',
  '42P01': 'TableNotFoundException',
  '42P07': 'TableExistsException',
  '55P03': 'LockWaitTimeoutException',
  25006: 'ReadOnlyException'
})
/** MySQL / MariaDB error numbers → MikroORM exception name (MySqlExceptionConverter's main cases). */
const MYSQL_ERRNO: Readonly<Record<number, string>> = Object.freeze({
  1213: 'DeadlockException',
  1205: 'LockWaitTimeoutException',
  1050: 'TableExistsException',
  1051: 'TableNotFoundException',
  1146: 'TableNotFoundException',
  1216: 'ForeignKeyConstraintViolationException',
  1217: 'ForeignKeyConstraintViolationException',
  1451: 'ForeignKeyConstraintViolationException',
  1452: 'ForeignKeyConstraintViolationException',
  1062: 'UniqueConstraintViolationException',
  1557: 'UniqueConstraintViolationException',
  1569: 'UniqueConstraintViolationException',
  1586: 'UniqueConstraintViolationException',
  1054: 'InvalidFieldNameException',
  1166: 'InvalidFieldNameException',
  1611: 'InvalidFieldNameException',
  1052: 'NonUniqueFieldNameException',
  1060: 'NonUniqueFieldNameException',
  1110: 'NonUniqueFieldNameException',
  1064: 'SyntaxErrorException',
  1149: 'SyntaxErrorException',
  1048: 'NotNullConstraintViolationException',
  1121: 'NotNullConstraintViolationException',
  1138: 'NotNullConstraintViolationException',
  1171: 'NotNullConstraintViolationException',
  1252: 'NotNullConstraintViolationException',
  1263: 'NotNullConstraintViolationException',
  1364: 'NotNullConstraintViolationException',
  1566: 'NotNullConstraintViolationException',
  3819: 'CheckConstraintViolationException',
  1044: 'ConnectionException',
  1045: 'ConnectionException',
  1046: 'ConnectionException',
  1049: 'ConnectionException',
  1095: 'ConnectionException',
  2002: 'ConnectionException',
  2005: 'ConnectionException'
})
const NETWORK_ERROR_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])
const CONNECT_SQLSTATES = new Set(['28000', '28P01', '3D000', '57P03', '53300'])

/**
 * The MikroORM exception name for a raw driver error, from its SQLSTATE / errno, without calling
 * MikroORM's `convertException` (which mutates the error's message).
 */
export function exceptionName (err: unknown): string {
  const e = err as { code?: unknown, errno?: unknown, sqlState?: unknown } | null
  if (e === null || typeof e !== 'object') return UNKNOWN_DB_ERROR
  const code = typeof e.code === 'string' ? e.code : typeof e.sqlState === 'string' ? e.sqlState : undefined
  if (code !== undefined) {
    const pg = PG_SQLSTATE[code]
    if (pg !== undefined) return pg
    if (NETWORK_ERROR_CODES.has(code) || code.startsWith('08') || CONNECT_SQLSTATES.has(code)) return 'ConnectionException'
    if (code.length === 5 && code.startsWith('23')) return 'ConstraintViolationException'
  }
  if (typeof e.errno === 'number') {
    const my = MYSQL_ERRNO[e.errno]
    if (my !== undefined) return my
  }
  if ((err as Error).name === 'DriverException' || (err as Error).name?.endsWith?.('Exception') === true) return (err as Error).name
  return UNKNOWN_DB_ERROR
}

/**
 * A five-character SQLSTATE (digits and upper-case letters), as PostgreSQL reports errors; Node's
 * system error codes of five letters (`EPIPE`) start with E, which no SQLSTATE class does.
 */
function isSqlState (code: unknown): boolean {
  if (typeof code !== 'string' || code.length !== 5 || code.charCodeAt(0) === 69) return false
  for (let i = 0; i < 5; i++) {
    const c = code.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return false
  }
  return true
}

function isConnectError (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown } | null
  if (e === null || typeof e !== 'object') return false
  if (typeof e.code === 'string' && (NETWORK_ERROR_CODES.has(e.code) || CONNECT_SQLSTATES.has(e.code))) return true
  return typeof e.message === 'string' && /timeout exceeded when trying to connect|connection timeout/i.test(e.message)
}

/**
 * Index of a statement's first keyword: leading whitespace, opening parentheses and SQL comments
 * (`/* ... *\/`, nested as PostgreSQL allows, and `-- ...` to the end of the line) are skipped,
 * so hints such as MikroORM 7's `qb.comment()` do not hide what the statement does.
 */
function keywordStart (sql: string): number {
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 40) {
      i++
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) { // /* ... */
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        const d = sql.charCodeAt(i)
        if (d === 42 && sql.charCodeAt(i + 1) === 47) { depth--; i += 2 } else if (d === 47 && sql.charCodeAt(i + 1) === 42) { depth++; i += 2 } else i++
      }
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) { // -- ...
      const eol = sql.indexOf('\n', i + 2)
      i = eol < 0 ? n : eol + 1
    } else {
      break
    }
  }
  return i
}

/** The `operation` index of a statement, from its first keyword (at `i`, see `keywordStart`). */
function classify (sql: string, i: number): number {
  const w = sql.slice(i, i + 6).toLowerCase()
  if (w === 'select') return OP_SELECT
  if (w === 'insert') return OP_INSERT
  if (w === 'update') return OP_UPDATE
  if (w === 'delete') return OP_DELETE
  if (w.startsWith('with')) return OP_SELECT
  return OP_OTHER
}

const WRITE_TABLE = /^[\s(]*(?:insert\s+(?:ignore\s+)?into|update|delete\s+from)\s+((?:[`"[]?[^\s`"\].]+[`"\]]?\.)?[`"[]?([^\s`"\].(]+)[`"\]]?)/i
/** Upsert statements (counted by `afterUpsert`, or, from a QueryBuilder, not at all): `ON CONFLICT`, `ON DUPLICATE KEY`, and MySQL/MariaDB's `INSERT IGNORE` (MikroORM's upsert when there is nothing to update). */
const UPSERT_CLAUSE = /\bon\s+(?:conflict|duplicate\s+key)\b|^[\s(]*insert\s+ignore\b/i

function statementText (query: unknown): string {
  if (typeof query === 'string') return query
  const q = query as Any
  if (q === null || typeof q !== 'object') return ''
  if (typeof q.sql === 'string') return q.sql
  if (typeof q.toSQL === 'function') return String(q.toSQL().sql ?? '')
  if (typeof q.toRaw === 'function') {
    const r = q.toRaw()
    return typeof r === 'string' ? r : String(r?.sql ?? '')
  }
  return ''
}

function rowsAffected (res: unknown): number {
  if (Array.isArray(res)) return res.length
  const r = res as { affectedRows?: unknown, rows?: unknown } | null
  if (r !== null && typeof r === 'object') {
    if (typeof r.affectedRows === 'number') return r.affectedRows
    if (Array.isArray(r.rows)) return r.rows.length
  }
  return 0
}

/** Entity writes held by an open transaction until the top-level transaction commits. */
class TxState {
  readonly parent: TxState | undefined
  readonly writes = new Map<string, number>()
  /**
   * On the top-level transaction: a statement in it failed and no savepoint rollback has undone
   * that since. PostgreSQL then answers COMMIT with ROLLBACK (SQLSTATE 25P02 for anything else).
   */
  aborted = false
  constructor (parent: TxState | undefined) {
    this.parent = parent
  }

  /** The top-level transaction this one (a savepoint, or itself) belongs to. */
  root (): TxState {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    let s: TxState = this
    while (s.parent !== undefined) s = s.parent
    return s
  }

  add (kind: number, entity: string, n: number): void {
    const key = `${kind}\u0000${entity}`
    this.writes.set(key, (this.writes.get(key) ?? 0) + n)
  }
}

/** The series of one MetricSet for one ORM instance, resolved once and kept. */
class Sink {
  readonly metrics: MetricSet
  readonly onInternalError: (component: string, err: unknown) => void
  private readonly context: string
  private readonly vendor: string
  private readonly writes: Array<Map<string, CounterSeries>> = [new Map(), new Map(), new Map(), new Map()]
  private readonly errors = new Map<string, CounterSeries>()
  readonly execute: CounterSeries
  readonly durations: HistogramSeries[]
  readonly commits: CounterSeries
  readonly rollbacks: CounterSeries
  readonly newConnections: CounterSeries
  readonly newConnectionErrors: CounterSeries

  constructor (metrics: MetricSet, context: string, vendor: string, onInternalError: (component: string, err: unknown) => void) {
    this.metrics = metrics
    this.context = context
    this.vendor = vendor
    this.onInternalError = onInternalError
    for (const key of WRITE_FAMILIES) metrics.get(key)
    this.newConnections = metrics.get('dbNewConnections').child(context, vendor)
    this.newConnectionErrors = metrics.get('dbNewConnectionErrors').child(context, vendor)
    this.execute = metrics.get('dbExecute').child(context, vendor)
    metrics.get('dbErrors')
    const duration = metrics.get('dbDuration')
    this.durations = OPERATIONS.map((op) => duration.child(context, vendor, op))
    const tx = metrics.get('dbTransactions')
    this.commits = tx.child(context, vendor, 'commit')
    this.rollbacks = tx.child(context, vendor, 'rollback')
  }

  /** Records a statement's duration, with the active OpenTelemetry span as exemplar when asked for. */
  observeDuration (op: number, seconds: number): void {
    const trace = this.metrics.exemplars ? activeSpanTrace() : undefined
    if (trace === undefined) this.durations[op].observe(seconds)
    else this.durations[op].observeWithExemplar(seconds, trace.traceId, trace.spanId)
  }

  write (kind: number, entity: string, n: number): void {
    const byEntity = this.writes[kind]
    let s = byEntity.get(entity)
    if (s === undefined) {
      s = this.metrics.get(WRITE_FAMILIES[kind]).child(this.context, entity)
      byEntity.set(entity, s)
    }
    s.inc(n)
  }

  error (type: string): void {
    let s = this.errors.get(type)
    if (s === undefined) {
      s = this.metrics.get('dbErrors').child(this.context, this.vendor, type)
      this.errors.set(type, s)
    }
    s.value++
  }
}

/**
 * Statements the plugin itself has MikroORM send (the Migrator's queries behind the migration
 * gauges, at scrape time) are not counted: they run in this context. `internalDepth` keeps the
 * per-statement cost to one comparison while no such query is in flight.
 */
const internalQueries = new AsyncLocalStorage<true>()
let internalDepth = 0

async function internally<R> (fn: () => Promise<R>): Promise<R> {
  internalDepth++
  try {
    return await internalQueries.run(true, fn)
  } finally {
    // On Node 20 an enabled AsyncLocalStorage keeps promise hooks on for the whole process;
    // turn it off again as soon as no internal query is in flight (the next run() re-enables it).
    if (--internalDepth === 0) internalQueries.disable()
  }
}

function isInternal (): boolean {
  return internalDepth > 0 && internalQueries.getStore() === true
}

type MigratorMethod = 'getExecuted' | 'getPending' | 'getExecutedMigrations' | 'getPendingMigrations'
const MIGRATOR_METHODS: readonly MigratorMethod[] = ['getExecuted', 'getPending', 'getExecutedMigrations', 'getPendingMigrations']

const quietMigrators = new WeakMap<object, Any>()

/**
 * The Migrator's read methods, run so that their statements are not counted, and shared while
 * in flight: the two gauges of one scrape (or concurrent scrapes) make one call, not two racing
 * ones (the first call creates MikroORM's migrations table; two at once can collide on it).
 */
function quietMigrator (m: Any): Any {
  if (m === undefined || m === null || typeof m !== 'object') return m
  let out = quietMigrators.get(m)
  if (out !== undefined) return out
  out = {}
  for (const name of MIGRATOR_METHODS) {
    if (typeof m[name] !== 'function') continue
    let inFlight: Promise<unknown> | undefined
    out[name] = async () => {
      if (inFlight === undefined) {
        inFlight = internally(async () => await m[name]())
        const clear = (): void => { inFlight = undefined }
        inFlight.then(clear, clear)
      }
      return await inFlight
    }
  }
  quietMigrators.set(m, out)
  return out
}

/** What `registerMigrationGauges` reads of an ORM, with the Migrator's queries kept out of the DB families. */
function migrationView (o: Any): object {
  return {
    config: {
      getExtension: (name: string) => quietMigrator(o.config?.getExtension?.(name)),
      // The settings that tell whether the app uses migrations (MikroORM 6 without the extension).
      get: (key: string) => o.config?.get?.(key)
    },
    getMigrator: typeof o.getMigrator === 'function' ? () => quietMigrator(o.getMigrator()) : undefined
  }
}

/** What the scrape-time collectors of one MetricSet read: every ORM attached to it. */
const ATTACHED = new WeakMap<MetricSet, Set<OrmInstrumentation>>()
const POOLS_SEEN = new WeakSet<object>()

interface PoolStats { idle: number, used: number, pending: number, max: number }

function findCoreVersion (orm: Any): string | undefined {
  // Configuration.get() turns its key into a property key, which calls toString() with
  // @mikro-orm/core on the stack: its file gives the package directory, hence its version.
  let file: string | undefined
  const key = {
    toString () {
      const original = Error.prepareStackTrace
      try {
        Error.prepareStackTrace = (_e, frames) => frames
        const frames = (new Error().stack as unknown as NodeJS.CallSite[])
        for (const f of frames) {
          const name = f.getFileName?.()
          if (typeof name === 'string' && /[\\/]@mikro-orm[\\/]core[\\/]/.test(name)) { file = name; break }
        }
      } finally {
        Error.prepareStackTrace = original
      }
      return '__fnm_version_probe__'
    }
  }
  try {
    orm.config.get(key)
  } catch {}
  if (file === undefined) return undefined
  if (file.startsWith('file:')) file = fileURLToPath(file)
  let dir = dirname(file)
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      if (pkg.name === '@mikro-orm/core' && typeof pkg.version === 'string') return pkg.version
    } catch {}
    dir = dirname(dir)
  }
  return undefined
}

function vendorOf (orm: Any): string {
  try {
    const name: string = orm.em.getPlatform().constructor.name
    const v = name.replace(/Platform$/, '').toLowerCase()
    if (v === 'bettersqlite' || v === 'libsql') return 'sqlite'
    return v === '' ? 'unknown' : v
  } catch {
    return 'unknown'
  }
}

/**
 * Instrumentation of one MikroORM instance: patches its connections once, tracks transactions
 * and fans every observation out to the MetricSets attached to it.
 */
export class OrmInstrumentation {
  readonly orm: Any
  readonly context: string
  readonly vendor: string
  readonly version: string
  /** 6 or 7, detected from the connection's shape. */
  readonly major: number
  readonly sinks: Sink[] = []
  private readonly txs = new WeakMap<object, TxState>()
  private readonly flushTrx = new WeakSet<object>()
  private readonly flushingCtx = new WeakSet<object>()
  /** Units of work whose flush is running: true once the flush opened its own transaction. */
  private readonly flushingUows = new WeakMap<object, boolean>()
  /** PostgreSQL aborts a transaction at its first failed statement; MySQL / MariaDB do not. */
  private readonly abortsOnError: boolean
  private tables: Map<string, string> | undefined

  constructor (orm: Any) {
    this.orm = orm
    const context = orm.config?.get?.('contextName')
    this.context = typeof context === 'string' && context !== '' ? context : 'default'
    this.vendor = vendorOf(orm)
    this.abortsOnError = this.vendor === 'postgresql'
    const conn = this.writeConnection()
    this.major = typeof conn?.getKnex === 'function' ? 6 : 7
    this.version = findCoreVersion(orm) ?? `${this.major}.x`
    for (const c of this.connections()) this.patch(c)
  }

  private writeConnection (): Any {
    return this.orm.em.getDriver().getConnection('write')
  }

  private connections (): Any[] {
    const driver = this.orm.em.getDriver()
    const list = [driver.getConnection('write')]
    for (const r of (driver.replicas ?? []) as Any[]) if (!list.includes(r)) list.push(r)
    return list
  }

  private reportError (err: unknown): void {
    for (const s of this.sinks) s.onInternalError('orm', err)
  }

  /** Wraps execute/begin/commit/rollback/connect of one connection instance, once. */
  private patch (conn: Any): void {
    if (conn === undefined || conn === null || conn[kPatched] === true) return
    conn[kPatched] = true
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this
    const execute = conn.execute
    conn.execute = function metricsExecute (this: Any, ...args: unknown[]) {
      // (query, params, method, ctx, loggerContext) in 6 and 7; every argument is passed on as given.
      const query = args[0]
      const ctx = args[3]
      const start = monotonicMs()
      return execute.apply(this, args).then(function onResult (res: unknown) {
        self.observeStatement(query, ctx, start, res, undefined)
        if (self.major === 6) self.checkPool(conn)
        return res
      }, function onError (err: unknown) {
        self.observeStatement(query, ctx, start, undefined, err)
        throw err
      })
    }
    const stream = conn.stream
    if (typeof stream === 'function') {
      // MikroORM 7's em.stream() / qb.stream(): (query, params, ctx, ...), rows yielded as they come;
      // one statement, observed when the iteration ends (done, left early, or failed).
      conn.stream = async function * metricsStream (this: Any, ...args: unknown[]) {
        const start = monotonicMs()
        let failure: unknown
        try {
          return yield * stream.apply(this, args)
        } catch (err) {
          failure = err ?? new Error('stream failed')
          throw err
        } finally {
          self.observeStatement(args[0], args[2], start, undefined, failure)
        }
      }
    }
    const begin = conn.begin
    conn.begin = async function metricsBegin (this: Any, options?: Any) {
      const trx = await begin.call(this, options)
      try {
        const parentCtx = options?.ctx
        self.txs.set(trx, new TxState(parentCtx !== undefined && parentCtx !== null ? self.txs.get(parentCtx) : undefined))
      } catch (err) {
        self.reportError(err)
      }
      return trx
    }
    const commit = conn.commit
    conn.commit = async function metricsCommit (this: Any, ctx: Any, ...rest: unknown[]) {
      const rolledBack = ctx?.isRolledBack === true
      await commit.call(this, ctx, ...rest)
      if (!rolledBack) {
        try {
          self.ended(ctx, true)
        } catch (err) {
          self.reportError(err)
        }
      }
    }
    const rollback = conn.rollback
    conn.rollback = async function metricsRollback (this: Any, ctx: Any, ...rest: unknown[]) {
      try {
        return await rollback.call(this, ctx, ...rest)
      } finally {
        try {
          self.ended(ctx, false)
        } catch (err) {
          self.reportError(err)
        }
      }
    }
    const connect = conn.connect
    if (typeof connect === 'function') {
      conn.connect = function metricsConnect (this: Any, ...args: unknown[]) {
        const r = connect.apply(this, args)
        Promise.resolve(r).then(() => self.refreshPool(), () => {})
        return r
      }
    }
  }

  /** Counts a statement unless the package itself ran it; a failure here is reported, never thrown. */
  private observeStatement (query: unknown, ctx: Any, start: number, res: unknown, err: unknown): void {
    if (internalDepth > 0 && isInternal()) return
    try {
      this.statement(query, ctx, start, res, err)
    } catch (e) {
      this.reportError(e)
    }
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
      const connectFailure = this.major >= 7 && isConnectError(err)
      for (let i = 0; i < sinks.length; i++) {
        const s = sinks[i]
        s.execute.value++
        s.observeDuration(op, seconds)
        s.error(type)
        if (connectFailure) s.newConnectionErrors.value++
      }
      if (ctx !== undefined && ctx !== null) {
        // A statement of a flush running in the caller's transaction failed: the flush is over.
        this.flushingCtx.delete(ctx)
        // PostgreSQL refused a statement (the error carries its SQLSTATE, not a client-side code):
        // the transaction is aborted from here on.
        if (this.abortsOnError && isSqlState((err as { code?: unknown } | null)?.code)) {
          const state = this.txs.get(ctx)
          if (state !== undefined) state.root().aborted = true
        }
      }
      return
    }
    for (let i = 0; i < sinks.length; i++) {
      const s = sinks[i]
      s.execute.value++
      s.observeDuration(op, seconds)
    }
    if (op === OP_SELECT || op === OP_OTHER) return
    // Writes: those of a flush are counted from its change sets, not here.
    if (ctx !== undefined && ctx !== null && (this.flushTrx.has(ctx) || this.flushingCtx.has(ctx))) return
    const sql = at === 0 ? text : text.slice(at)
    const m = WRITE_TABLE.exec(sql)
    if (m === null) return
    if (op === OP_INSERT && UPSERT_CLAUSE.test(sql)) return
    const entity = this.entityOf(m[2])
    if (entity === undefined) return
    const n = rowsAffected(res)
    if (n <= 0) return
    const kind = op === OP_INSERT ? INSERT : op === OP_UPDATE ? UPDATE : DELETE
    this.record(kind, entity, n, ctx)
  }

  private entityOf (table: string): string | undefined {
    if (this.tables === undefined) {
      const tables = new Map<string, string>()
      const all = this.orm.getMetadata().getAll()
      const metas: Iterable<Any> = all instanceof Map ? all.values() : Object.values(all)
      for (const meta of metas) {
        if (meta.embeddable === true || meta.virtual === true || typeof meta.tableName !== 'string') continue
        const name: string = meta.root?.className ?? meta.className
        if (!tables.has(meta.tableName)) tables.set(meta.tableName, name)
      }
      this.tables = tables
    }
    return this.tables.get(table)
  }

  /** Counts a write now, or holds it in its open transaction. */
  record (kind: number, entity: string, n: number, ctx: unknown): void {
    if (ctx !== undefined && ctx !== null) {
      const state = this.txs.get(ctx as object)
      if (state !== undefined) {
        state.add(kind, entity, n)
        return
      }
    }
    for (let i = 0; i < this.sinks.length; i++) this.sinks[i].write(kind, entity, n)
  }

  /** A transaction or savepoint ended. */
  private ended (ctx: Any, committed: boolean): void {
    if (ctx === undefined || ctx === null) return
    this.flushingCtx.delete(ctx)
    const root = !('savepointName' in ctx)
    const state = this.txs.get(ctx)
    if (state === undefined && !root) return
    this.txs.delete(ctx)
    if (state !== undefined) {
      // ROLLBACK TO SAVEPOINT undoes the failure that aborted the transaction (it happened after
      // the savepoint, or the savepoint could not have been made); a COMMIT of an aborted
      // transaction is answered with ROLLBACK: nothing of it was written.
      if (!root && !committed) state.root().aborted = false
      else if (root && committed && state.aborted) committed = false
    }
    if (root) {
      for (const s of this.sinks) (committed ? s.commits : s.rollbacks).value++
    }
    if (state === undefined || !committed) return
    if (state.parent !== undefined) {
      for (const [key, n] of state.writes) state.parent.writes.set(key, (state.parent.writes.get(key) ?? 0) + n)
      return
    }
    for (const [key, n] of state.writes) {
      const sep = key.indexOf('\u0000')
      const kind = Number(key.slice(0, sep))
      const entity = key.slice(sep + 1)
      for (const s of this.sinks) s.write(kind, entity, n)
    }
  }

  /** Subscriber: a flush is starting. */
  beforeFlush (em: Any, uow: Any): void {
    if (uow !== undefined && uow !== null) this.flushingUows.set(uow, false)
    if (em?.isInTransaction?.() === true) {
      const ctx = em.getTransactionContext()
      if (ctx !== undefined && ctx !== null) this.flushingCtx.add(ctx)
    }
  }

  /** Subscriber: a transaction started; the one a flush opens is marked. */
  transactionStarted (uow: Any, trx: Any): void {
    if (uow !== undefined && uow !== null && trx !== undefined && trx !== null && this.flushingUows.has(uow)) {
      this.flushTrx.add(trx)
      this.flushingUows.set(uow, true)
    }
  }

  /** Subscriber: a transaction rolled back (a failed flush ends there). */
  transactionRolledBack (uow: Any): void {
    if (uow !== undefined && uow !== null) this.flushingUows.delete(uow)
  }

  /** Subscriber: a flush succeeded (its own transaction, if any, has committed). */
  afterFlush (em: Any, uow: Any, counts: Map<string, number>): void {
    let openedTrx: boolean | undefined
    if (uow !== undefined && uow !== null) {
      openedTrx = this.flushingUows.get(uow)
      this.flushingUows.delete(uow)
    }
    let ctx: Any
    if (em?.isInTransaction?.() === true) {
      ctx = em.getTransactionContext()
      if (ctx !== undefined && ctx !== null) this.flushingCtx.delete(ctx)
    }
    // A flush outside any transaction (`implicitTransactions: false`): each statement was
    // committed as it ran and counted then, by rows, like a native write.
    if (openedTrx === false && (ctx === undefined || ctx === null)) return
    for (const [key, n] of counts) {
      const sep = key.indexOf('\u0000')
      this.record(Number(key.slice(0, sep)), key.slice(sep + 1), n, ctx)
    }
  }

  /** Subscriber: one entity was upserted. */
  upserted (em: Any, entity: string): void {
    const ctx = em?.isInTransaction?.() === true ? em.getTransactionContext() : undefined
    this.record(UPSERT, entity, 1, ctx)
  }

  /** The current pool of one connection, if it is connected (never connects it). */
  private async poolOf (conn: Any): Promise<Any> {
    if (conn?.connected !== true) return undefined
    if (this.major === 6) return conn.client?.client?.pool
    if (typeof conn.getNativeClient !== 'function') return undefined
    try {
      return await conn.getNativeClient()
    } catch {
      return undefined
    }
  }

  /** The current pools: the write connection's and each read replica's (never connects them). */
  async currentPools (): Promise<Any[]> {
    const pools = await Promise.all(this.connections().map(async (c) => await this.poolOf(c)))
    return pools.filter((p) => p !== undefined && p !== null)
  }

  /** MikroORM 6 replaces a connection's knex pool on reconnect: attach to the new one. */
  checkPool (conn: Any): void {
    const pool = conn?.client?.client?.pool
    if (pool === undefined || pool === conn[kPool]) return
    try {
      conn[kPool] = pool
      this.attachPool(pool)
    } catch (err) {
      this.reportError(err)
    }
  }

  /** Finds the current pools and attaches the new-connection listeners to them (once per pool). */
  refreshPool (): void {
    this.currentPools().then((pools) => { for (const p of pools) this.attachPool(p) }, (err) => this.reportError(err))
  }

  private attachPool (pool: Any): void {
    if (POOLS_SEEN.has(pool)) return
    POOLS_SEEN.add(pool)
    const sinks = this.sinks
    if (this.major === 6) {
      const existing = Number(pool.numUsed?.() ?? 0) + Number(pool.numFree?.() ?? 0)
      for (const s of sinks) s.newConnections.inc(existing)
      pool.on('createSuccess', () => { for (const s of sinks) s.newConnections.value++ })
      pool.on('createFail', () => { for (const s of sinks) s.newConnectionErrors.value++ })
    } else {
      for (const s of sinks) s.newConnections.inc(Number(pool.totalCount ?? 0))
      // Not 'error': before 7.1.9 a listener there would swallow errors that crash the app.
      pool.on('connect', () => { for (const s of sinks) s.newConnections.value++ })
    }
  }

  /** Pool gauges at this moment, summed over the write pool and the replicas' pools; undefined when none is connected. */
  async poolStats (): Promise<PoolStats | undefined> {
    let stats: PoolStats | undefined
    for (const pool of await this.currentPools()) {
      this.attachPool(pool)
      let one: PoolStats
      if (this.major === 6) {
        one = { idle: pool.numFree(), used: pool.numUsed(), pending: pool.numPendingAcquires(), max: Number(pool.max) }
      } else {
        if (pool.ended === true || pool.ending === true) continue
        one = { idle: pool.idleCount, used: pool.totalCount - pool.idleCount, pending: pool.waitingCount, max: Number(pool.options?.max ?? 10) }
      }
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

  /** Adds a MetricSet to report to (idempotent). */
  addSink (metrics: MetricSet, onInternalError: (component: string, err: unknown) => void): void {
    if (this.sinks.some((s) => s.metrics === metrics)) return
    this.sinks.push(new Sink(metrics, this.context, this.vendor, onInternalError))
    let set = ATTACHED.get(metrics)
    if (set === undefined) {
      set = new Set()
      ATTACHED.set(metrics, set)
      metrics.get('ormInfo', collectInfo(set))
      metrics.get('dbPoolConnections', collectPools(set, metrics))
      metrics.get('dbPoolMax')
    }
    set.add(this)
    const sink = this.sinks[this.sinks.length - 1]
    this.currentPools().then((pools) => {
      for (const pool of pools) {
        // A pool already seen: its open connections were counted for the other sinks only.
        if (POOLS_SEEN.has(pool)) sink.newConnections.inc(this.major === 6 ? Number(pool.numUsed()) + Number(pool.numFree()) : Number(pool.totalCount ?? 0))
        else this.attachPool(pool)
      }
    }, (err) => this.reportError(err))
  }

  /** Stops reporting to a MetricSet. */
  removeSink (metrics: MetricSet): void {
    const i = this.sinks.findIndex((s) => s.metrics === metrics)
    if (i >= 0) this.sinks.splice(i, 1)
    ATTACHED.get(metrics)?.delete(this)
  }
}

function collectInfo (set: Set<OrmInstrumentation>): (family: MetricFamily<unknown>) => void {
  return function collectOrmInfo (family) {
    family.clear()
    for (const o of set) (family.child(o.context, o.vendor, o.version) as Any).set(1)
  }
}

function collectPools (set: Set<OrmInstrumentation>, metrics: MetricSet): (family: MetricFamily<unknown>) => Promise<void> {
  return async function collectPoolGauges (family) {
    family.clear()
    const max = metrics.get('dbPoolMax')
    max.clear()
    for (const o of set) {
      let stats: PoolStats | undefined
      try {
        stats = await o.poolStats()
      } catch (err) {
        metrics.countError('collector')
        continue
      }
      if (stats === undefined) continue
      ;(family.child(o.context, o.vendor, 'idle') as Any).set(stats.idle)
      ;(family.child(o.context, o.vendor, 'used') as Any).set(stats.used)
      ;(family.child(o.context, o.vendor, 'pending') as Any).set(stats.pending)
      max.child(o.context, o.vendor).set(stats.max)
    }
  }
}

function instrumentationOf (orm: Any): OrmInstrumentation {
  let instr = orm[kInstrumentation] as OrmInstrumentation | undefined
  if (instr === undefined) {
    instr = new OrmInstrumentation(orm)
    Object.defineProperty(orm, kInstrumentation, { value: instr, configurable: true })
  }
  return instr
}

/**
 * Per-entity writes of a flush that succeeded, read in `afterFlush` (before MikroORM's
 * post-commit cleanup clears them): one per change set, plus one update per entity whose change
 * set MikroORM dropped in favour of an "extra update".
 *
 * Why the extra updates: when several entities of one type change the same unique property in one
 * flush, MikroORM (6 and 7, `UnitOfWork.checkUniqueProps` / `scheduleExtraUpdate`) moves that
 * property out of every change set but the first into a deferred extra update, to avoid
 * transient unique violations; a change set left with an empty payload is dropped from
 * `getChangeSets()`, and the row is written by `commitExtraUpdates` instead. Counting change
 * sets alone read 1 for two updated entities. Extra updates of entities that keep a change set
 * (a circular foreign key fixed up after an insert, or a unique property moved out of an update
 * that changes other fields too) are the same entity's write and are not counted again; extra
 * updates without a change set (self-referencing M:N collections) write pivot rows, not the
 * entity, and are not counted.
 */
function changeSetCounts (uow: Any): Map<string, number> {
  const counts = new Map<string, number>()
  const changeSets = uow.getChangeSets() as Any[]
  // Tallied per metadata object first (no string built per change set: flushes can be large).
  const byMeta = new Map<Any, number[]>()
  for (let i = 0; i < changeSets.length; i++) {
    const cs = changeSets[i]
    const kind = CHANGE_SET_KIND[cs.type as string]
    if (kind === undefined) continue
    let tally = byMeta.get(cs.meta)
    if (tally === undefined) {
      tally = [0, 0, 0, 0]
      byMeta.set(cs.meta, tally)
    }
    tally[kind]++
  }
  for (const [meta, tally] of byMeta) {
    for (let kind = 0; kind < tally.length; kind++) {
      if (tally[kind] === 0) continue
      const key = `${kind}\u0000${meta.className as string}`
      counts.set(key, (counts.get(key) ?? 0) + tally[kind])
    }
  }
  const extra = typeof uow.getExtraUpdates === 'function' ? uow.getExtraUpdates() as Set<Any> | undefined : undefined
  if (extra === undefined || extra === null || extra.size === 0) return counts
  let written: Set<unknown> | undefined
  for (const [entity, , , changeSet] of extra) {
    if (changeSet === undefined || changeSet === null || entity === undefined || entity === null) continue
    if (written === undefined) written = new Set(changeSets.map((cs) => cs.entity))
    if (written.has(entity)) continue
    written.add(entity)
    const className: unknown = changeSet.meta?.className ?? entity.__meta?.className
    if (typeof className !== 'string') continue
    const key = `${UPDATE}\u0000${className}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}

/**
 * MikroORM event subscriber counting per-entity writes of the unit of work. Put it in the ORM
 * config (`subscribers: [new MetricsSubscriber()]`, the complete way: forks made with
 * `freshEventManager` see it too) and register the plugin with `{ orm }`, which binds it; or
 * let the plugin add one. Until bound, it holds its counts and hands them over when bound.
 * It never throws into a flush.
 */
export class MetricsSubscriber {
  /** Brand, so that a copy of this class loaded twice is still recognised. */
  readonly [kBrand] = true
  private instrumentation: OrmInstrumentation | undefined
  private held: Map<string, number> | undefined
  /** Set when another MetricsSubscriber of the same ORM does the counting. */
  private disabled = false

  /** Binds the subscriber to an ORM's instrumentation and hands over what it held. */
  bind (instrumentation: OrmInstrumentation): void {
    this.instrumentation = instrumentation
    const held = this.held
    this.held = undefined
    if (held !== undefined) instrumentation.afterFlush(undefined, undefined, held)
  }

  /** Makes this subscriber count nothing (a duplicate). */
  disable (): void {
    this.disabled = true
    this.held = undefined
  }

  /** @internal */
  beforeFlush (args: { em: unknown, uow: unknown }): void {
    try {
      if (!this.disabled) this.instrumentation?.beforeFlush(args.em, args.uow)
    } catch (err) {
      this.fail(err)
    }
  }

  /** @internal */
  afterFlush (args: { em: unknown, uow: unknown }): void {
    try {
      if (this.disabled) return
      const counts = changeSetCounts(args.uow)
      if (this.instrumentation !== undefined) this.instrumentation.afterFlush(args.em, args.uow, counts)
      else this.hold(counts)
    } catch (err) {
      this.fail(err)
    }
  }

  /** @internal */
  afterUpsert (args: { em: unknown, meta: { className: string } }): void {
    try {
      if (this.disabled) return
      if (this.instrumentation !== undefined) this.instrumentation.upserted(args.em, args.meta.className)
      else this.hold(new Map([[`${UPSERT}\u0000${args.meta.className}`, 1]]))
    } catch (err) {
      this.fail(err)
    }
  }

  /** @internal */
  afterTransactionStart (args: { uow?: unknown, transaction?: unknown }): void {
    try {
      if (!this.disabled) this.instrumentation?.transactionStarted(args.uow, args.transaction)
    } catch (err) {
      this.fail(err)
    }
  }

  /** @internal */
  afterTransactionRollback (args: { uow?: unknown }): void {
    try {
      if (!this.disabled) this.instrumentation?.transactionRolledBack(args.uow)
    } catch (err) {
      this.fail(err)
    }
  }

  private hold (counts: Map<string, number>): void {
    const held = this.held ?? (this.held = new Map())
    for (const [key, n] of counts) held.set(key, (held.get(key) ?? 0) + n)
  }

  private fail (err: unknown): void {
    try {
      const sinks = this.instrumentation?.sinks ?? []
      for (const s of sinks) s.onInternalError('orm', err)
    } catch {}
  }
}

function isMetricsSubscriber (s: unknown): s is MetricsSubscriber {
  return s !== null && typeof s === 'object' && (s as Record<symbol, unknown>)[kBrand] === true
}

/** True when the value looks like a MikroORM instance (what the `orm` option accepts). */
export function isMikroOrm (value: unknown): boolean {
  const v = value as Any
  return v !== null && typeof v === 'object' && typeof v.em?.getEventManager === 'function' &&
    typeof v.em?.getDriver === 'function' && typeof v.config?.get === 'function' && typeof v.getMetadata === 'function'
}

/**
 * Instruments a MikroORM instance for a MetricSet: binds the `MetricsSubscriber` found in its
 * config (or registers one), wraps its connections once, and adds the pool and info collectors
 * and the migration gauges (`lib/migrations.ts`: asked at scrape time, cached `migrationsTtlMs`,
 * absent when the ORM has no Migrator). Returns a function that stops reporting to this MetricSet.
 */
export function attachOrm (orm: unknown, metrics: MetricSet, onInternalError: (component: string, err: unknown) => void, migrationsTtlMs: number = DEFAULT_MIGRATIONS_TTL_MS): () => void {
  const o = orm as Any
  const instr = instrumentationOf(o)
  instr.addSink(metrics, onInternalError)
  try {
    registerMigrationGauges(metrics, migrationView(o), instr.context, migrationsTtlMs)
  } catch (err) {
    onInternalError('orm', err)
  }
  const em = o.em.getEventManager()
  const found: MetricsSubscriber[] = []
  const configured = o.config.get('subscribers') as Iterable<unknown> | undefined
  for (const s of configured ?? []) if (isMetricsSubscriber(s) && !found.includes(s)) found.push(s)
  if (typeof em.getSubscribers === 'function') {
    for (const s of em.getSubscribers() as Iterable<unknown>) if (isMetricsSubscriber(s) && !found.includes(s)) found.push(s)
  }
  if (found.length === 0) {
    const sub = new MetricsSubscriber()
    em.registerSubscriber(sub)
    // Also in the config, so that forks with `freshEventManager` get it.
    try {
      if (configured instanceof Set) configured.add(sub)
      else if (Array.isArray(configured)) configured.push(sub)
    } catch {}
    found.push(sub)
  }
  found[0].bind(instr)
  for (let i = 1; i < found.length; i++) found[i].disable()
  return function detachOrm () {
    instr.removeSink(metrics)
  }
}
