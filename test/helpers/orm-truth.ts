/**
 * Ground truth for the ORM and database families, for one MikroORM major (`lib` is its
 * `@mikro-orm/postgresql`, `pg` the `pg` module that driver loads): a seeded random workload on a
 * fresh database, then every exact metric compared with three sources outside the package:
 *
 * - PostgreSQL's own statistics (`pg_stat_user_tables`, `pg_stat_database`), read after every
 *   backend of the database has exited (a backend flushes its statistics when it exits);
 * - a statement counter below MikroORM, around `pg.Client.prototype.query` (what went on the
 *   wire, and what PostgreSQL answered: a COMMIT answered with ROLLBACK is a rollback);
 * - the workload's own tally, from the ORM's return values (rows inserted, affected, deleted).
 *
 * `ORM_TRUTH_SEED` replays a seed (printed by every run), `ORM_TRUTH_OPS` sets the number of
 * operations (default 300).
 */
import Fastify from 'fastify'
import netboxMetrics from '../../lib/index'
import { startDatabase } from '../../examples/db'
import { entities, sample } from './orm-suite'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any
type T = Any

const KINDS = ['ins', 'upd', 'del', 'ups'] as const
type Kind = typeof KINDS[number]
const FAMILY: Record<Kind, string> = { ins: 'orm_entity_inserts_total', upd: 'orm_entity_updates_total', del: 'orm_entity_deletes_total', ups: 'orm_entity_upserts_total' }
const ENTITIES = ['Site', 'Device', 'Iface', 'Tag'] as const
const TABLE: Record<string, string> = { Site: 'site', Device: 'device', Iface: 'iface', Tag: 'tag' }
const SQLSTATE_TYPE: Record<string, string> = {
  23505: 'UniqueConstraintViolationException',
  23503: 'ForeignKeyConstraintViolationException',
  23502: 'NotNullConstraintViolationException',
  '25P02': 'DatabaseError'
}

/** Row counts per `entity\u0000kind`. */
class Rows extends Map<string, number> {
  add (entity: string, kind: Kind, n: number): void {
    if (n === 0) return
    const k = `${entity}\u0000${kind}`
    this.set(k, (this.get(k) ?? 0) + n)
  }

  of (entity: string, kind: Kind): number {
    return this.get(`${entity}\u0000${kind}`) ?? 0
  }

  addAll (other: Rows): void {
    for (const [k, n] of other) this.set(k, (this.get(k) ?? 0) + n)
  }
}

/** What the workload knows it did, from the ORM's return values. */
class Tally {
  /** Rows of work that committed: what the package must count. */
  readonly committed = new Rows()
  /** Rows written by transactions that rolled back: PostgreSQL counts them, the package must not. */
  readonly rolledBack = new Rows()
  /** Rows PostgreSQL wrote before a statement failed (heap tuple written, then the constraint failed). */
  readonly attempted = new Rows()
  /** Rows deleted by the database itself (ON DELETE CASCADE). */
  readonly dbCascade = new Rows()
}

/** Writes of one unit of work: committed into its parent (or the tally), or dropped. */
class Ledger {
  readonly rows = new Rows()
  constructor (private readonly tally: Tally, private readonly parent?: Ledger) {}
  child (): Ledger { return new Ledger(this.tally, this) }
  add (entity: string, kind: Kind, n: number): void { this.rows.add(entity, kind, n) }
  commit (): void { (this.parent?.rows ?? this.tally.committed).addAll(this.rows) }
  rollback (): void { this.tally.rolledBack.addAll(this.rows) }
}

/** Totals of the statement counter below MikroORM. */
interface WireCounts {
  statements: number
  /** By first keyword after comments: select (and with), insert, update, delete, other. */
  byOperation: Record<string, number>
  errors: Map<string, number>
  commits: number
  /** COMMITs PostgreSQL answered with ROLLBACK (the transaction had failed). */
  commitsRolledBack: number
  rollbacks: number
  /** Statements outside a transaction block: each is a transaction of its own. */
  autocommitOk: number
  autocommitFailed: number
  /** knex's own `select version();` on the first connection of each knex client (MikroORM 6): not MikroORM's. */
  driverOwn: number
  /** With ORM_TRUTH_DEBUG set: the statements, in order. */
  log: string[]
}

function emptyWire (): WireCounts {
  return { statements: 0, byOperation: { select: 0, insert: 0, update: 0, delete: 0, other: 0 }, errors: new Map(), commits: 0, commitsRolledBack: 0, rollbacks: 0, autocommitOk: 0, autocommitFailed: 0, driverOwn: 0, log: [] }
}

function cloneWire (w: WireCounts): WireCounts {
  return { ...w, byOperation: { ...w.byOperation }, errors: new Map(w.errors), log: [] }
}

/** The test's own reading of a statement: transaction control, or the first keyword. */
function wireKind (text: string): string {
  const s = text.replace(/^(?:\s|\(|\/\*[\s\S]*?\*\/|--[^\n]*(?:\n|$))*/, '').toLowerCase()
  if (/^(?:begin|start\s+transaction)\b/.test(s)) return 'begin'
  if (/^commit\b/.test(s)) return 'commit'
  if (/^rollback\s+to\b/.test(s) || /^(?:savepoint|release)\b/.test(s)) return 'savepoint'
  if (/^rollback\b/.test(s)) return 'rollback'
  const w = /^[a-z]+/.exec(s)?.[0] ?? ''
  if (w === 'with') return 'select'
  return ['select', 'insert', 'update', 'delete'].includes(w) ? w : 'other'
}

/**
 * Counts what goes through `pg.Client#query` on connections to `database`, and what PostgreSQL
 * answers (command tags, SQLSTATEs, transaction blocks). Installed before the ORM starts.
 */
function installWireCounter (pg: Any, database: string): { counts: WireCounts, uninstall: () => void } {
  const counts = emptyWire()
  const inTx = new WeakMap<object, boolean>()
  const proto = pg.Client.prototype
  const original = proto.query
  function record (client: object, kind: string, err: Any, res: Any, text = ''): void {
    if (kind === 'begin') { if (err === undefined) inTx.set(client, true); return }
    if (kind === 'commit') {
      inTx.set(client, false)
      if (res?.command === 'ROLLBACK') counts.commitsRolledBack++
      else counts.commits++
      return
    }
    if (kind === 'rollback') { inTx.set(client, false); counts.rollbacks++; return }
    if (kind === 'savepoint') return
    if (/^select version\(\);?$/i.test(text)) {
      counts.driverOwn++
      if (inTx.get(client) !== true) counts.autocommitOk++
      return
    }
    if (process.env.ORM_TRUTH_DEBUG !== undefined) counts.log.push(`${kind} ${err === undefined ? 'ok' : String(err?.code)} ${text.slice(0, 60)}`)
    counts.statements++
    counts.byOperation[kind]++
    const tx = inTx.get(client) === true
    if (err !== undefined) {
      const code = String(err?.code)
      counts.errors.set(code, (counts.errors.get(code) ?? 0) + 1)
      if (!tx) counts.autocommitFailed++
    } else if (!tx) counts.autocommitOk++
  }
  proto.query = function wireQuery (this: Any, config: Any, values?: Any, callback?: Any) {
    if (this.database !== database) return original.apply(this, arguments)
    const text: string = typeof config === 'string' ? config : String(config?.text ?? '')
    const kind = wireKind(text)
    if (typeof config?.submit === 'function') {
      // A Submittable (pg-cursor: MikroORM 7's stream()): counted when sent.
      record(this, kind, undefined, undefined, text)
      return original.apply(this, arguments)
    }
    const client = this as object
    if (typeof values === 'function' || typeof callback === 'function') {
      const args = Array.from(arguments)
      const i = typeof values === 'function' ? 1 : 2
      const cb = args[i]
      args[i] = function (err: Any, res: Any) {
        record(client, kind, err ?? undefined, res, text)
        return cb.apply(this, arguments)
      }
      return original.apply(this, args)
    }
    const p = original.apply(this, arguments)
    p.then((res: Any) => record(client, kind, undefined, res, text), (err: Any) => record(client, kind, err, undefined, text))
    return p
  }
  return { counts, uninstall: () => { proto.query = original } }
}

/** Small seeded PRNG (mulberry32). */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return function next () {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface PgStats { xactCommit: number, xactRollback: number, sessions: number }

async function pgClient (pg: Any, url: string): Promise<Any> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  return c
}

/** pg_stat_database of `name`, once no backend is connected to it and its numbers stopped moving. */
async function settledDatabaseStats (admin: Any, name: string): Promise<PgStats> {
  let previous = ''
  let stable = 0
  for (let i = 0; i < 200; i++) {
    const active = await admin.query('select count(*)::int as n from pg_stat_activity where datname = $1', [name])
    await admin.query('select pg_stat_clear_snapshot()')
    const r = await admin.query('select xact_commit::int as "xactCommit", xact_rollback::int as "xactRollback", sessions::int as sessions from pg_stat_database where datname = $1', [name])
    const now = JSON.stringify(r.rows[0])
    if (active.rows[0].n === 0 && now === previous) {
      // Backends flush their statistics on exit, after leaving pg_stat_activity: stable for 300 ms.
      if (++stable >= 3) return r.rows[0]
    } else stable = 0
    previous = now
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`pg_stat_database of ${name} did not settle`)
}

async function tableStats (pg: Any, url: string): Promise<Map<string, { ins: number, upd: number, del: number }>> {
  const c = await pgClient(pg, url)
  try {
    await c.query('select pg_stat_clear_snapshot()')
    const r = await c.query('select relname, n_tup_ins::int as ins, n_tup_upd::int as upd, n_tup_del::int as del from pg_stat_user_tables')
    return new Map(r.rows.map((row: Any) => [row.relname, row]))
  } finally {
    await c.end()
  }
}

/** Runs the workload against `lib` and compares every exact metric with its truth. */
export function truthSuite (t: T, lib: Any, pg: Any): void {
  const seed = process.env.ORM_TRUTH_SEED !== undefined && process.env.ORM_TRUTH_SEED !== '' ? Number(process.env.ORM_TRUTH_SEED) : Math.floor(Math.random() * 2 ** 31)
  const ops = Number(process.env.ORM_TRUTH_OPS ?? 300)

  t.test(`seeded random workload (seed ${seed}, ${ops} operations; replay: ORM_TRUTH_SEED=${seed} ORM_TRUTH_OPS=${ops})`, async (t: T) => {
    t.comment(`seed ${seed}: replay with ORM_TRUTH_SEED=${seed} ORM_TRUTH_OPS=${ops}`)
    const t0 = Date.now()
    const lap = (what: string): void => { t.comment(`${what}: ${Date.now() - t0} ms`) }
    const db = await startDatabase()
    t.teardown(() => db.stop())
    const dbName = new URL(db.url).pathname.slice(1)
    const adminUrl = new URL(db.url)
    adminUrl.pathname = '/postgres'
    const admin = await pgClient(pg, adminUrl.toString())
    t.teardown(() => admin.end())
    const autovacuum = (await admin.query('show autovacuum')).rows[0].autovacuum === 'on'
    if (autovacuum && (process.env.DATABASE_URL ?? '') === '') {
      // The embedded server is this test's own: an autovacuum worker visiting the database would add
      // transactions of its own to pg_stat_database.
      await admin.query('alter system set autovacuum = off')
      await admin.query('select pg_reload_conf()')
    }
    const schemas = entities(lib, { truth: true }).schemas
    // A read replica (the same database): reads go through a second pool, whose sessions PostgreSQL counts too.
    const config = { clientUrl: db.url, entities: schemas, debug: false, allowGlobalContext: true, pool: { min: 0, max: 4 }, replicas: [{ name: 'read-1', clientUrl: db.url }] }
    const setup = await lib.MikroORM.init(config)
    const gen = typeof setup.getSchemaGenerator === 'function' ? setup.getSchemaGenerator() : setup.schema
    await (typeof gen.createSchema === 'function' ? gen.createSchema() : gen.create())
    await setup.close(true)
    const tablesBefore = await tableStats(pg, db.url)
    const base = await settledDatabaseStats(admin, dbName)
    lap('database, schema and baseline')

    const wire = installWireCounter(pg, dbName)
    t.teardown(wire.uninstall)
    const orm = await lib.MikroORM.init(config)
    const app = Fastify()
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm })
    const atAttach = cloneWire(wire.counts)
    const tally = new Tally()
    const [Site, Device, Iface, Tag] = schemas.map((s: Any) => s.meta.class)
    const rnd = prng(seed)
    const pick = <V>(list: readonly V[]): V => list[Math.floor(rnd() * list.length)]
    const int = (n: number): number => Math.floor(rnd() * n)
    let serial = 0
    const uname = (p: string): string => `${p}${++serial}`
    const affected = (res: Any): number => typeof res === 'number' ? res : Number(res?.affectedRows ?? 0)

    // A site no operation renames or deletes: the target of unique violations.
    const ANCHOR = 'anchor'
    await orm.em.fork().insert(Site, { name: ANCHOR })
    tally.committed.add('Site', 'ins', 1)
    const someDevice = async (em: Any): Promise<Any> => (await em.find(Device, {}, { orderBy: { id: 'asc' }, limit: 1, offset: int(5), populate: ['interfaces'] }))[0]

    /** Write steps usable anywhere (outside or inside a transaction), recording into a ledger. */
    const steps: Array<(em: Any, l: Ledger) => Promise<void>> = [
      async function flushCreate (em, l) {
        const n = 1 + int(3)
        for (let i = 0; i < n; i++) em.persist(em.create(Site, { name: uname('s') }))
        const d = em.create(Device, { name: uname('d') })
        const k = int(3)
        for (let i = 0; i < k; i++) d.interfaces.add(em.create(Iface, { name: uname('i'), device: d }))
        em.persist(d)
        await em.flush()
        l.add('Site', 'ins', n)
        l.add('Device', 'ins', 1)
        l.add('Iface', 'ins', k)
      },
      async function flushUpdate (em, l) {
        const sites = await em.find(Site, {}, { limit: 1 + int(3), orderBy: { id: 'desc' } })
        for (const s of sites) s.note = uname('note')
        await em.flush()
        l.add('Site', 'upd', sites.length)
      },
      async function flushRenameUnique (em, l) {
        // Several entities of one type changing a unique property: extra updates, still one per entity.
        const sites = await em.find(Site, { name: { $ne: ANCHOR } }, { limit: 2 + int(2), orderBy: { id: 'asc' } })
        for (const s of sites) s.name = uname('s')
        await em.flush()
        l.add('Site', 'upd', sites.length)
      },
      async function flushDeleteCascade (em, l) {
        const d = await someDevice(em)
        if (d === undefined) return
        const k = d.interfaces.getItems().length
        em.remove(d)
        await em.flush()
        l.add('Device', 'del', 1)
        l.add('Iface', 'del', k)
      },
      async function flushOrphanRemoval (em, l) {
        const d = await someDevice(em)
        if (d === undefined || d.interfaces.getItems().length === 0) return
        d.interfaces.remove(d.interfaces.getItems()[0])
        await em.flush()
        l.add('Iface', 'del', 1)
      },
      async function insertMany (em, l) {
        const n = 1 + int(4)
        // Its return value is no row count (6.6.16 returns one id for several rows on PostgreSQL):
        // a multi-row INSERT that succeeded wrote every row.
        await em.insertMany(Device, Array.from({ length: n }, () => ({ name: uname('d') })))
        l.add('Device', 'ins', n)
      },
      async function nativeUpdate (em, l) {
        l.add('Device', 'upd', await em.nativeUpdate(Device, { id: { $lte: 1 + int(40) } }, { name: uname('d') }))
      },
      async function nativeDeleteWithDbCascade (em, l) {
        const d = (await em.find(Device, {}, { orderBy: { id: 'desc' }, limit: 1, offset: int(3) }))[0]
        if (d === undefined) return
        const ifaces = await em.count(Iface, { device: d.id })
        const n = await em.nativeDelete(Device, { id: d.id })
        l.add('Device', 'del', n)
        // Deleted by the database (ON DELETE CASCADE): PostgreSQL counts them, the package cannot.
        tally.dbCascade.add('Iface', 'del', n === 1 ? ifaces : 0)
      },
      async function qbWrites (em, l) {
        const comment = rnd() < 0.5 ? `truth ${serial}` : undefined
        const qb = (): Any => comment === undefined ? em.createQueryBuilder(Site) : em.createQueryBuilder(Site).comment(comment)
        const a = uname('q')
        const b = uname('q')
        await qb().insert([{ name: a }, { name: b }]).execute('run')
        l.add('Site', 'ins', 2)
        l.add('Site', 'upd', affected(await qb().update({ note: 'qb' }).where({ name: a }).execute('run')))
        l.add('Site', 'del', affected(await qb().delete().where({ name: b }).execute('run')))
      },
      async function upserts (em, l) {
        const names = Array.from({ length: 1 + int(3) }, () => `t${int(8)}`)
        if (rnd() < 0.5) {
          await em.upsert(Tag, { name: names[0], note: uname('n') })
          l.add('Tag', 'ups', 1)
        } else {
          const unique = [...new Set(names)]
          await em.upsertMany(Tag, unique.map((name) => ({ name, note: uname('n') })))
          l.add('Tag', 'ups', unique.length)
        }
      },
      async function rawExecute (em, l) {
        const hint = pick(['', '/* raw hint */ ', '-- raw hint\n'])
        const rows = await em.execute(`${hint}insert into site (name) values ('${uname('r')}'), ('${uname('r')}') returning id`)
        l.add('Site', 'ins', rows.length)
        const res = await em.execute(`${hint}update site set note = 'raw' where id = ${Number(rows[0].id)}`, [], 'run')
        l.add('Site', 'upd', affected(res))
        const del = await em.execute(`${hint}delete from site where id = ${Number(rows[1].id)} returning id`)
        l.add('Site', 'del', del.length)
        await em.execute(`${hint}select count(*) from site`)
      }
    ]

    /** Violations: rejected statements; PostgreSQL may have written the tuple before the check failed. */
    const violations: Array<(em: Any) => Promise<void>> = [
      async function unique (em) {
        const name = ANCHOR
        await t.rejects(em.insert(Site, { name }), { name: 'UniqueConstraintViolationException' })
        tally.attempted.add('Site', 'ins', 1) // heap tuple written, then the unique index refused it
      },
      async function foreignKey (em) {
        await t.rejects(em.insert(Iface, { name: uname('i'), device: 999999999 }), { name: 'ForeignKeyConstraintViolationException' })
        tally.attempted.add('Iface', 'ins', 1) // written, then the FK trigger refused it
      },
      async function swapUnique (em) {
        // Two entities swapping a unique value in one flush: MikroORM (6 and 7) sends the first
        // UPDATE as is, PostgreSQL refuses it, and the flush's transaction rolls back.
        const sites = await em.find(Site, { name: { $ne: ANCHOR } }, { limit: 2, orderBy: { id: 'asc' } })
        if (sites.length < 2) return
        ;[sites[0].name, sites[1].name] = [sites[1].name, sites[0].name]
        await t.rejects(em.flush(), { name: 'UniqueConstraintViolationException' })
        tally.attempted.add('Site', 'upd', 1) // the new row version was written, then the index refused it
      },
      async function notNull (em) {
        await t.rejects(em.execute(`insert into iface (name, device_id) values (null, 1)`))
        // refused before any tuple was written
      }
    ]

    const onFork = async (fn: (em: Any) => Promise<void>): Promise<void> => await fn(orm.em.fork())
    const runStep = async (em: Any, l: Ledger): Promise<void> => await pick(steps)(em, l)
    // Steps that leave no managed entities behind. After a savepoint rolls back, the enclosing
    // EntityManager still holds what the savepoint's flush did (MikroORM does not undo it), and a
    // later flush of it writes in ways no tally can foresee; so only these follow a rollback.
    const stateless = steps.filter((s) => ['insertMany', 'nativeUpdate', 'qbWrites', 'upserts', 'rawExecute'].includes(s.name))
    const runStateless = async (em: Any, l: Ledger): Promise<void> => await pick(stateless)(em, l)

    // Fastify routes, each on its own forked EntityManager, hit concurrently.
    app.post('/w', async () => {
      const l = new Ledger(tally)
      const em = orm.em.fork()
      const d = em.create(Device, { name: uname('d') })
      d.interfaces.add(em.create(Iface, { name: uname('i'), device: d }))
      em.persist([d, em.create(Site, { name: uname('s') })])
      await em.flush()
      l.add('Device', 'ins', 1)
      l.add('Iface', 'ins', 1)
      l.add('Site', 'ins', 1)
      const n = await em.nativeUpdate(Site, { id: { $lte: 3 } }, { note: 'route' })
      l.add('Site', 'upd', n)
      l.commit()
      return { ok: true }
    })
    app.post('/tx', async () => {
      const l = new Ledger(tally)
      await orm.em.fork().transactional(async (tem: Any) => {
        await tem.insert(Device, { name: uname('d') })
        tem.persist(tem.create(Site, { name: uname('s') }))
        await tem.flush()
      })
      l.add('Device', 'ins', 1)
      l.add('Site', 'ins', 1)
      l.commit()
      return { ok: true }
    })

    const operations: Array<[number, () => Promise<void>]> = [
      [30, async () => await onFork(async (em) => { const l = new Ledger(tally); await runStep(em, l); l.commit() })],
      [6, async () => await onFork(async (em) => { // flush outside any transaction (implicitTransactions: false)
        const l = new Ledger(tally)
        orm.config.set('implicitTransactions', false)
        try {
          await pick(steps.slice(0, 5))(em, l)
        } finally {
          orm.config.set('implicitTransactions', true)
        }
        l.commit()
      })],
      [6, async () => await onFork(pick(violations))],
      [8, async () => await onFork(async (em) => { // committed transaction
        const l = new Ledger(tally)
        await em.transactional(async (tem: Any) => { for (let i = 1 + int(3); i > 0; i--) await runStep(tem, l) })
        l.commit()
      })],
      [5, async () => await onFork(async (em) => { // rolled back
        const l = new Ledger(tally)
        await t.rejects(em.transactional(async (tem: Any) => {
          for (let i = 1 + int(3); i > 0; i--) await runStep(tem, l)
          throw new Error('rollback')
        }), /rollback/)
        l.rollback()
      })],
      [5, async () => await onFork(async (em) => { // nested: savepoints committed and rolled back in a committed transaction
        const l = new Ledger(tally)
        await em.transactional(async (tem: Any) => {
          await runStep(tem, l)
          const ok = l.child()
          await tem.transactional(async (inner: Any) => { await runStep(inner, ok) })
          ok.commit()
          const bad = l.child()
          await t.rejects(tem.transactional(async (inner: Any) => {
            await runStateless(inner, bad)
            throw new Error('savepoint')
          }), /savepoint/)
          bad.rollback()
          if (rnd() < 0.5) {
            // A violation inside a savepoint, rolled back to it: the transaction goes on.
            const v = l.child()
            await t.rejects(tem.transactional(async (inner: Any) => {
              await runStateless(inner, v)
              const name = ANCHOR
              await inner.insert(Site, { name })
            }), { name: 'UniqueConstraintViolationException' })
            v.rollback()
            tally.attempted.add('Site', 'ins', 1)
          }
          await runStateless(tem, l)
        })
        l.commit()
      })],
      [4, async () => await onFork(async (em) => { // failed, then committed: PostgreSQL answers the COMMIT with ROLLBACK
        const l = new Ledger(tally)
        const name = ANCHOR
        await em.transactional(async (tem: Any) => {
          await runStep(tem, l)
          await tem.insert(Site, { name }).catch(() => {})
          tally.attempted.add('Site', 'ins', 1)
          if (rnd() < 0.5) await tem.execute('select 1').catch(() => {}) // 25P02: the transaction is aborted
        })
        l.rollback()
      })],
      [4, async () => { // concurrent requests through Fastify routes
        const n = 2 + int(4)
        const replies = await Promise.all(Array.from({ length: n }, async () => await app.inject({ method: 'POST', url: pick(['/w', '/tx']) })))
        for (const r of replies) t.equal(r.statusCode, 200)
      }],
      [2, async () => { // MikroORM 7: em.stream(), one statement
        const em = orm.em.fork()
        if (typeof em.stream !== 'function') return
        for await (const row of em.stream(Site, { limit: 3 })) void row
      }]
    ]
    const weights = operations.reduce((a, [w]) => a + w, 0)
    for (let i = 0; i < ops; i++) {
      let r = rnd() * weights
      const op = operations.find(([w]) => (r -= w) < 0) ?? operations[0]
      await op[1]()
      if (process.env.ORM_TRUTH_DEBUG !== undefined) {
        // Replaying a seed: the first operation after which the package and the wire disagree.
        const onWire = wire.counts.statements - atAttach.statements
        const b = (await app.inject('/metrics')).body
        atAttach.statements += wire.counts.statements - atAttach.statements - onWire // the scrape's own Migrator queries
        const seen = sample(b, 'db_execute_total', { context: 'default', vendor: 'postgresql' })
        if (seen !== onWire) t.comment(`after operation ${i} (${operations.indexOf(op)}): package ${String(seen)}, wire ${wire.counts.statements - atAttach.statements}: ${wire.counts.log.slice(-12).join(' | ')}`)
      }
    }

    lap('workload')
    // The wire as of now: the scrape below runs the plugin's own Migrator queries (MikroORM 7 loads
    // the Migrator when @mikro-orm/migrations is installed), which the package rightly leaves out.
    const w = cloneWire(wire.counts)
    const body = (await app.inject('/metrics')).body
    const inWindow = (key: 'statements' | 'commits' | 'commitsRolledBack' | 'rollbacks'): number => w[key] - atAttach[key]
    const pgLabels = { context: 'default', vendor: 'postgresql' }

    // 1. The package against the statement counter below MikroORM (statements since the plugin attached).
    t.equal(sample(body, 'db_execute_total', pgLabels), inWindow('statements'), 'db_execute_total = statements on the wire')
    for (const op of ['select', 'insert', 'update', 'delete', 'other']) {
      t.equal(sample(body, 'db_query_duration_seconds_count', { ...pgLabels, operation: op }) ?? 0, w.byOperation[op] - atAttach.byOperation[op], `db_query_duration_seconds{operation="${op}"} = the wire's first keywords`)
    }
    for (const [code, n] of w.errors) {
      t.equal(sample(body, 'db_errors_total', { ...pgLabels, type: SQLSTATE_TYPE[code] ?? `unexpected SQLSTATE ${code}` }), n - (atAttach.errors.get(code) ?? 0), `db_errors_total for SQLSTATE ${code}`)
    }
    t.equal(sample(body, 'db_transactions_total', { ...pgLabels, outcome: 'commit' }), inWindow('commits'), 'commits: COMMITs PostgreSQL answered with COMMIT')
    t.equal(sample(body, 'db_transactions_total', { ...pgLabels, outcome: 'rollback' }), inWindow('rollbacks') + inWindow('commitsRolledBack'), 'rollbacks: ROLLBACKs and COMMITs answered with ROLLBACK')
    t.ok(inWindow('commitsRolledBack') > 0 || ops < 100, 'the workload had failed-then-committed transactions')

    // 2. The package against the workload's own tally.
    for (const entity of ENTITIES) {
      for (const kind of KINDS) {
        t.equal(sample(body, FAMILY[kind], { context: 'default', entity }) ?? 0, tally.committed.of(entity, kind), `${FAMILY[kind]}{entity="${entity}"} = committed ${kind} in the tally`)
      }
    }
    const newConnections = sample(body, 'db_new_connections_total', pgLabels)
    await app.close()
    await orm.close(true)
    wire.uninstall()

    // 3. PostgreSQL's view, after every backend has exited.
    const after = await settledDatabaseStats(admin, dbName)
    const tables = await tableStats(pg, db.url)
    lap('statistics settled')
    const sessions = after.sessions - base.sessions
    // MikroORM 7.0 and 7.1 have no getNativeClient(): the family is left out there (docs/orm.md).
    const [ormMajor, ormMinor] = String(lib.__version).split('.').map(Number)
    if (ormMajor === 7 && ormMinor < 2) t.equal(newConnections, undefined, `db_new_connections_total absent on MikroORM ${String(lib.__version)} (no getNativeClient())`)
    else t.equal(newConnections, sessions, 'db_new_connections_total = sessions PostgreSQL opened')
    const totals = wire.counts
    t.ok(totals.driverOwn <= 2, `knex's own version query, at most once per knex client (write, replica): ${totals.driverOwn}`)
    if (autovacuum && (process.env.DATABASE_URL ?? '') !== '') {
      t.comment('autovacuum is on on this server: its workers add transactions to pg_stat_database; xact_commit/xact_rollback not compared')
    } else {
      // Every session runs one transaction at start-up; every statement outside a block is a transaction.
      t.equal(after.xactCommit - base.xactCommit, sessions + totals.commits + totals.autocommitOk, 'xact_commit = sessions + COMMITs answered COMMIT + autocommit statements that succeeded')
      t.equal(after.xactRollback - base.xactRollback, totals.rollbacks + totals.commitsRolledBack + totals.autocommitFailed, 'xact_rollback = ROLLBACKs + COMMITs answered ROLLBACK + autocommit statements that failed')
    }
    for (const entity of ENTITIES) {
      const now = tables.get(TABLE[entity])
      const then = tablesBefore.get(TABLE[entity])
      const seen = (k: 'ins' | 'upd' | 'del'): number => (now?.[k] ?? 0) - (then?.[k] ?? 0)
      const extra = (k: Kind): number => tally.rolledBack.of(entity, k) + tally.attempted.of(entity, k) + tally.dbCascade.of(entity, k)
      if (entity === 'Tag') {
        // Tag is written by upserts only: each one inserts or updates one row.
        t.equal(seen('ins') + seen('upd'), tally.committed.of(entity, 'ups') + extra('ups'), 'tag: n_tup_ins + n_tup_upd = upserts (committed + rolled back)')
        t.equal(seen('del'), 0)
        continue
      }
      for (const k of ['ins', 'upd', 'del'] as const) {
        t.equal(seen(k), tally.committed.of(entity, k) + extra(k), `${TABLE[entity]}: n_tup_${k} = committed (the package's count) + rolled back + written before a failed check + database cascades`)
      }
    }
  })
}
