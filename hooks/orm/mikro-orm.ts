/**
 * Every MikroORM internal (and every driver object reached through it) this package reads, in one
 * place, probed once when an ORM is attached. Nothing is imported from `@mikro-orm/*`: the shapes
 * are duck-typed, so a MikroORM 6 CommonJS app and a MikroORM 7 ESM app load the same file.
 *
 * What each piece needs, by MikroORM line (docs/orm.md, "What is served, per MikroORM version"):
 * - statements, errors, durations, transactions, native writes: the connection's `execute`,
 *   `begin`, `commit`, `rollback` (public methods, all lines), wrapped by `connection.ts`; read
 *   replicas through the driver's protected `replicas` array;
 * - pool gauges and new connections: MikroORM 6, knex's pool (`conn.getKnex().client.pool`, a
 *   tarn pool) while `conn.connected`; MikroORM 7, `conn.getNativeClient()` (a `pg.Pool`, 7.2 and
 *   later: 7.0 and 7.1 have no public way to reach the pool, so these families are left out);
 * - per-entity writes: the flush events (`em`, `uow`) and `uow.getChangeSets()`,
 *   `getCollectionUpdates()`, `getExtraUpdates()` (public, all lines).
 *
 * Where a piece is missing or has another shape, `missing` says what, and the families that need
 * it are left out (index.ts counts it once in `metrics_errors_total{component="orm"}` and logs
 * one warning naming the version).
 */
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { flushTally, type Tally } from './writes'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** One pool's gauges at this moment. */
export interface PoolStats { idle: number, used: number, pending: number, max: number }

function isFn (v: unknown): boolean {
  return typeof v === 'function'
}

function readCoreVersion (dir: string): string | undefined {
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      if (pkg.name === '@mikro-orm/core' && typeof pkg.version === 'string') return pkg.version
    } catch {}
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  return undefined
}

function coreVersionFrom (file: string): string | undefined {
  const own = readCoreVersion(dirname(file))
  if (own !== undefined) return own
  try {
    return readCoreVersion(dirname(createRequire(file).resolve('@mikro-orm/core/package.json')))
  } catch {
    return undefined
  }
}

/**
 * The version of the `@mikro-orm/core` this ORM was built from: the package.json of the core
 * package beside the module that exports the ORM's class (found in `require.cache`, which holds
 * CommonJS modules and, on Node >= 22, ES modules loaded with `require()`). For an ES module
 * app the module is not in the cache: the core package the app's working directory resolves is
 * taken when its major is the ORM's. Undefined when neither says.
 */
export function mikroOrmVersion (orm: object, major: number): string | undefined {
  const cache = (typeof require === 'function' ? require.cache : undefined) ?? {}
  for (const file of Object.keys(cache)) {
    if (!file.includes('@mikro-orm')) continue
    const ctor = (cache[file]?.exports as Any)?.MikroORM
    if (!isFn(ctor) || !(orm instanceof ctor)) continue
    const v = coreVersionFrom(file)
    if (v !== undefined) return v
  }
  try {
    const v = coreVersionFrom(join(process.cwd(), 'index.js'))
    if (v !== undefined && Number(v.split('.')[0]) === major) return v
  } catch {}
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

const CONNECTION_METHODS = ['execute', 'begin', 'commit', 'rollback'] as const

/** What the package reads of one MikroORM instance, checked once. */
export class MikroOrmAccess {
  readonly orm: Any
  readonly context: string
  readonly vendor: string
  /** 6 (knex) or 7 (kysely), from the connection's shape. */
  readonly major: number
  /** `@mikro-orm/core`'s version, or `<major>.x` when it cannot be read. */
  readonly version: string
  /** What is missing, for the warning: empty when everything the package reads is there. */
  readonly missing: string[] = []
  /** Statements, errors, durations, transactions and native writes can be observed. */
  readonly statements: boolean
  /** The pools can be read (pool gauges and `db_new_connections_total`). */
  readonly pools: boolean
  /** Flush events carry what the per-entity counters need. */
  readonly flushes: boolean
  /** PostgreSQL aborts a transaction at its first failed statement; MySQL / MariaDB do not. */
  readonly abortsOnError: boolean
  private tables: Map<string, string> | undefined

  constructor (orm: Any) {
    this.orm = orm
    const context = orm.config?.get?.('contextName')
    this.context = typeof context === 'string' && context !== '' ? context : 'default'
    this.vendor = vendorOf(orm)
    this.abortsOnError = this.vendor === 'postgresql'
    const conn = this.writeConnection()
    this.major = isFn(conn?.getKnex) ? 6 : 7
    this.version = mikroOrmVersion(orm, this.major) ?? `${this.major}.x`

    const lacking = CONNECTION_METHODS.filter((m) => !isFn(conn?.[m]))
    const driver = orm.em.getDriver()
    const replicasConfigured = (orm.config?.get?.('replicas') as unknown[] | undefined)?.length ?? 0
    if (replicasConfigured > 0 && !Array.isArray(driver.replicas)) lacking.push('driver.replicas' as never)
    if (lacking.length > 0) this.missing.push(`connection ${lacking.join(', ')} (db_execute_total, db_query_duration_seconds, db_errors_total, db_transactions_total and native writes left out)`)
    this.statements = lacking.length === 0

    let pools = true
    if (this.major === 6) {
      if (!('connected' in conn)) { pools = false; this.missing.push('connection.connected (db_pool_* and db_new_connections_total left out)') }
    } else if (!isFn(conn?.getNativeClient)) {
      pools = false
      this.missing.push('connection.getNativeClient() (MikroORM >= 7.2; db_pool_connections, db_pool_max_connections and db_new_connections_total left out)')
    }
    this.pools = pools

    const uow = orm.em.getUnitOfWork?.(false)
    this.flushes = isFn(uow?.getChangeSets) && isFn(uow?.getCollectionUpdates)
    if (!this.flushes) this.missing.push('UnitOfWork.getChangeSets()/getCollectionUpdates() (orm_entity_* of flushes left out)')
  }

  private writeConnection (): Any {
    return this.orm.em.getDriver().getConnection('write')
  }

  /** The write connection and each read replica's connection. */
  connections (): Any[] {
    const driver = this.orm.em.getDriver()
    const list = [driver.getConnection('write')]
    const replicas = driver.replicas as Any[] | undefined
    if (Array.isArray(replicas)) for (const r of replicas) if (!list.includes(r)) list.push(r)
    return list
  }

  /** The driver of an EntityManager (one per ORM, shared by its forks): how an event finds its ORM. */
  static driverOf (em: Any): object | undefined {
    const d = isFn(em?.getDriver) ? em.getDriver() : undefined
    return d !== null && typeof d === 'object' ? d : undefined
  }

  /** The transaction context an EntityManager is in, if any. */
  static transactionOf (em: Any): object | undefined {
    if (em?.isInTransaction?.() !== true) return undefined
    const ctx = em.getTransactionContext()
    // knex's transactions (MikroORM 6) are callable function objects.
    return ctx !== null && (typeof ctx === 'object' || typeof ctx === 'function') ? ctx : undefined
  }

  /**
   * True while a flush of this unit of work is running: from computing its change sets to the
   * post-commit cleanup that MikroORM runs on every path (`finally`), success or failure.
   */
  static flushInProgress (uow: Any): boolean {
    if (uow.getExtraUpdates?.()?.size > 0) return true
    return uow.getChangeSets().length > 0 || uow.getCollectionUpdates().length > 0
  }

  /** The writes of a successful flush (read in `afterFlush`). */
  static flushTally (uow: Any): Tally {
    return flushTally(uow.getChangeSets(), isFn(uow.getExtraUpdates) ? uow.getExtraUpdates() : undefined)
  }

  /** The root entity a table belongs to; undefined for pivot tables of M:N collections and unknown tables. */
  entityOfTable (table: string): string | undefined {
    if (this.tables === undefined) {
      const tables = new Map<string, string>()
      const all = this.orm.getMetadata().getAll()
      const metas: Iterable<Any> = all instanceof Map ? all.values() : Object.values(all)
      for (const meta of metas) {
        // Pivot rows are not entity writes (docs/orm.md), whichever way they are written.
        if (meta.embeddable === true || meta.virtual === true || meta.pivotTable === true || typeof meta.tableName !== 'string') continue
        const name: string = meta.root?.className ?? meta.className
        if (!tables.has(meta.tableName)) tables.set(meta.tableName, name)
      }
      this.tables = tables
    }
    return this.tables.get(table)
  }

  /** The current pool of one connection, if it is connected (never connects it). */
  async poolOf (conn: Any): Promise<Any> {
    if (!this.pools || conn?.connected !== true) return undefined
    if (this.major === 6) return conn.getKnex()?.client?.pool ?? undefined
    try {
      return await conn.getNativeClient()
    } catch {
      return undefined
    }
  }

  /** MikroORM 6 only: the knex pool of a connection, synchronously (knex replaces it on reconnect). */
  knexPoolOf (conn: Any): Any {
    if (!this.pools || this.major !== 6 || conn?.connected !== true) return undefined
    return conn.getKnex()?.client?.pool ?? undefined
  }

  /** Gauges of one pool; undefined for a pool that is ending (MikroORM 7 after close). */
  poolStats (pool: Any): PoolStats | undefined {
    if (this.major === 6) return { idle: pool.numFree(), used: pool.numUsed(), pending: pool.numPendingAcquires(), max: Number(pool.max) }
    if (pool.ended === true || pool.ending === true) return undefined
    return { idle: pool.idleCount, used: pool.totalCount - pool.idleCount, pending: pool.waitingCount, max: Number(pool.options?.max ?? 10) }
  }

  /** Connections a pool holds open now (counted once when a pool is first seen). */
  openConnections (pool: Any): number {
    return this.major === 6 ? Number(pool.numUsed?.() ?? 0) + Number(pool.numFree?.() ?? 0) : Number(pool.totalCount ?? 0)
  }

  /** Listens for new connections of a pool (tarn `createSuccess` / `createFail`; pg-pool `connect`). */
  onPoolEvents (pool: Any, created: () => void, failed: () => void): void {
    if (this.major === 6) {
      pool.on('createSuccess', created)
      pool.on('createFail', failed)
    } else {
      // Not 'error': before 7.1.9 a listener there would swallow errors that crash the app.
      pool.on('connect', created)
    }
  }
}
