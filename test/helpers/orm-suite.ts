/**
 * The ORM write-path suite, run against one MikroORM major (the library module is passed in:
 * `@mikro-orm/postgresql` 6 from the root, 7 from test/fixtures/orm7). Asserts exact exposition
 * lines after each write path, with a fresh plugin registry per case.
 */
import Fastify from 'fastify'
import netboxMetrics from '../../lib/index'
import { MetricsSubscriber } from '../../hooks/orm'
import { startDatabase } from '../../examples/db'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any
type T = Any

/**
 * Entity classes and schemas, built from the given library's EntitySchema. `truth` adds what the
 * ground-truth workload needs (test/helpers/orm-truth.ts): a non-unique `Site.note`, foreign keys
 * the database itself acts on (`ON DELETE CASCADE` for interfaces, `SET NULL` for a device's
 * site), and `Tag`, written by upserts only.
 */
export function entities (lib: Any, { truth = false }: { truth?: boolean } = {}): { Site: Any, Device: Any, Iface: Any, Tag?: Any, schemas: Any[] } {
  class Site { id!: number; name!: string; note?: string }
  class Device { id!: number; name!: string; site!: Site; interfaces: Any }
  class Iface { id!: number; name!: string; device!: Device }
  class Tag { id!: number; name!: string; note!: string }
  // A fresh object per schema: MikroORM completes property options in place.
  const id = (): Record<string, unknown> => ({ type: 'number', primary: true, autoincrement: true })
  const schemas = [
    new lib.EntitySchema({ class: Site, tableName: 'site', properties: { id: id(), name: { type: 'string', unique: true }, ...(truth ? { note: { type: 'string', nullable: true } } : {}) } }),
    new lib.EntitySchema({
      class: Device,
      tableName: 'device',
      properties: {
        id: id(),
        name: { type: 'string' },
        site: { kind: 'm:1', entity: () => Site, nullable: true, ...(truth ? { deleteRule: 'set null' } : {}) },
        interfaces: { kind: '1:m', entity: () => Iface, mappedBy: 'device', orphanRemoval: true, cascade: ['persist', 'remove'] }
      }
    }),
    new lib.EntitySchema({ class: Iface, tableName: 'iface', properties: { id: id(), name: { type: 'string' }, device: { kind: 'm:1', entity: () => Device, ...(truth ? { deleteRule: 'cascade' } : {}) } } })
  ]
  if (!truth) return { Site, Device, Iface, schemas }
  schemas.push(new lib.EntitySchema({ class: Tag, tableName: 'tag', properties: { id: id(), name: { type: 'string', unique: true }, note: { type: 'string' } } }))
  return { Site, Device, Iface, Tag, schemas }
}

/** Starts an ORM on a URL with the test entities and creates the schema. */
export async function initOrm (lib: Any, url: string, extra: Record<string, unknown> = {}): Promise<Any> {
  const e = entities(lib)
  const orm = await lib.MikroORM.init({ clientUrl: url, entities: e.schemas, debug: false, allowGlobalContext: true, pool: { min: 0, max: 3 }, ...extra })
  const gen = typeof orm.getSchemaGenerator === 'function' ? orm.getSchemaGenerator() : orm.schema
  await (typeof gen.createSchema === 'function' ? gen.createSchema() : gen.create())
  ;(orm as Any).__entities = e
  return orm
}

/** A Fastify app with the plugin on these ORMs; returns the app and a scrape function. */
export async function appFor (orm: Any): Promise<{ app: Any, scrape: () => Promise<string> }> {
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm })
  return { app, scrape: async () => (await app.inject('/metrics')).body }
}

/** The value of one exposition line, or undefined when the series is absent. */
export function sample (body: string, name: string, labels: Record<string, string>): number | undefined {
  const text = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${text}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** One case: a fresh app (fresh registry) on a shared ORM, `fn` on a forked EntityManager; returns the scrape. */
export async function runCase (orm: Any, fn: (em: Any) => Promise<void>): Promise<string> {
  const { app, scrape } = await appFor(orm)
  try {
    await fn(orm.em.fork())
    return await scrape()
  } finally {
    await app.close()
  }
}

const entityLabels = (entity: string): Record<string, string> => ({ context: 'default', entity })
/** One entity's insert, update, delete and upsert counts in a scrape (context `default`). */
export const entityWrites = {
  ins: (b: string, e: string): number | undefined => sample(b, 'orm_entity_inserts_total', entityLabels(e)),
  upd: (b: string, e: string): number | undefined => sample(b, 'orm_entity_updates_total', entityLabels(e)),
  del: (b: string, e: string): number | undefined => sample(b, 'orm_entity_deletes_total', entityLabels(e)),
  ups: (b: string, e: string): number | undefined => sample(b, 'orm_entity_upserts_total', entityLabels(e))
}

/** Runs every write-path case against `lib`. */
export function writeSuite (t: T, lib: Any): void {
  let db: { url: string, stop: () => Promise<void> }
  let orm: Any
  let E: ReturnType<typeof entities>
  const { ins, upd, del, ups } = entityWrites
  const db6 = { context: 'default', vendor: 'postgresql' }
  // MikroORM 7.0 and 7.1 offer no way to reach the pool: its families are left out (docs/orm.md).
  const [libMajor, libMinor] = String(lib.__version ?? '').split('.').map(Number)
  const poolsServed = !(libMajor === 7 && libMinor < 2)
  const noPoolSeries = (t: T, b: string): void => {
    t.notMatch(b, /^db_pool_connections\{/m, 'pool gauges left out')
    t.notMatch(b, /^db_pool_max_connections\{/m)
    t.notMatch(b, /^db_new_connections_total\{/m)
  }

  t.before(async () => {
    db = await startDatabase()
    orm = await initOrm(lib, db.url)
    E = orm.__entities
  })
  t.teardown(async () => {
    await orm?.close(true)
    await db?.stop()
  })

  const run = async (fn: (em: Any) => Promise<void>): Promise<string> => await runCase(orm, fn)

  t.test('flush create / update / delete, once per entity', async (t: T) => {
    let b = await run(async (em) => {
      em.persist([Object.assign(new E.Site(), { name: 's1' }), Object.assign(new E.Site(), { name: 's2' }), Object.assign(new E.Site(), { name: 's3' })])
      await em.flush()
    })
    t.equal(ins(b, 'Site'), 3)
    b = await run(async (em) => {
      const sites = await em.find(E.Site, { name: { $in: ['s1', 's2'] } })
      for (const s of sites) s.name += 'x'
      await em.flush()
    })
    // Two entities changing a unique property: MikroORM writes the second as an "extra update"
    // (not in getChangeSets()); both are counted.
    t.equal(upd(b, 'Site'), 2)
    t.equal(ins(b, 'Site'), undefined)
    b = await run(async (em) => {
      em.remove(await em.findOneOrFail(E.Site, { name: 's3' }))
      await em.flush()
    })
    t.equal(del(b, 'Site'), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
    t.ok((sample(b, 'db_execute_total', db6) ?? 0) >= 2, 'statements counted')
    t.match(b, /db_query_duration_seconds_count\{context="default",vendor="postgresql",operation="delete"\} 1\n/)
  })

  t.test('several entities of one type in one flush: exact inserts, updates, deletes', async (t: T) => {
    let b = await run(async (em) => {
      for (let i = 0; i < 5; i++) em.persist(Object.assign(new E.Device(), { name: `many${i}` }))
      await em.flush()
    })
    t.equal(ins(b, 'Device'), 5, 'five inserts, one batched INSERT')
    b = await run(async (em) => {
      const ds = await em.find(E.Device, { name: { $like: 'many%' } }, { orderBy: { id: 'asc' } })
      for (const d of ds.slice(0, 4)) d.name = `${d.name as string}-u`
      await em.flush()
    })
    t.equal(upd(b, 'Device'), 4, 'four updates of a non-unique property, one batched UPDATE')
    t.equal(ins(b, 'Device'), undefined)
    b = await run(async (em) => {
      em.persist([Object.assign(new E.Site(), { name: 'm1' }), Object.assign(new E.Site(), { name: 'm2' }), Object.assign(new E.Site(), { name: 'm3' })])
      await em.flush()
      const sites = await em.find(E.Site, { name: { $in: ['m1', 'm2', 'm3'] } })
      for (const s of sites) s.name = `${s.name as string}-renamed`
      await em.flush()
    })
    t.equal(ins(b, 'Site'), 3)
    t.equal(upd(b, 'Site'), 3, 'three updates of a unique property: one change set, two extra updates')
    b = await run(async (em) => {
      const ds = await em.find(E.Device, { name: { $like: 'many%' } })
      t.equal(ds.length, 5)
      em.remove(ds)
      const sites = await em.find(E.Site, { name: { $like: 'm_-renamed' } })
      em.remove(sites)
      await em.flush()
    })
    t.equal(del(b, 'Device'), 5, 'five deletes, one batched DELETE')
    t.equal(del(b, 'Site'), 3)
    t.equal(upd(b, 'Device'), undefined)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
  })

  t.test('orphan removal and cascade remove', async (t: T) => {
    let b = await run(async (em) => {
      const d = em.create(E.Device, { name: 'd1' })
      em.persist(d)
      d.interfaces.add(em.create(E.Iface, { name: 'eth0', device: d }), em.create(E.Iface, { name: 'eth1', device: d }))
      await em.flush()
    })
    t.equal(ins(b, 'Device'), 1)
    t.equal(ins(b, 'Iface'), 2)
    b = await run(async (em) => {
      const d = await em.findOneOrFail(E.Device, { name: 'd1' }, { populate: ['interfaces'] })
      d.interfaces.remove(d.interfaces.getItems().find((i: Any) => i.name === 'eth0'))
      await em.flush()
    })
    t.equal(del(b, 'Iface'), 1, 'orphan removal')
    b = await run(async (em) => {
      const d = await em.findOneOrFail(E.Device, { name: 'd1' }, { populate: ['interfaces'] })
      em.remove(d)
      await em.flush()
    })
    t.equal(del(b, 'Device'), 1)
    t.equal(del(b, 'Iface'), 1, 'cascade remove')
  })

  t.test('upsert and upsertMany', async (t: T) => {
    const b = await run(async (em) => {
      await em.upsert(E.Site, { name: 'u1' })
      await em.upsertMany(E.Site, [{ name: 'u2' }, { name: 'u1' }])
    })
    t.equal(ups(b, 'Site'), 3)
    t.equal(ins(b, 'Site'), undefined, 'the upsert statements are not counted again as inserts')
  })

  t.test('insert / insertMany / nativeUpdate / nativeDelete', async (t: T) => {
    const b = await run(async (em) => {
      await em.insert(E.Device, { name: 'n1' })
      await em.insertMany(E.Device, [{ name: 'n2' }, { name: 'n3' }, { name: 'n4' }])
    })
    t.equal(ins(b, 'Device'), 4)
    const b2 = await run(async (em) => {
      t.equal(await em.nativeUpdate(E.Device, { name: { $in: ['n1', 'n2', 'n3'] } }, { name: 'n-updated' }), 3)
      await em.nativeDelete(E.Device, { name: 'n-updated' })
    })
    t.equal(upd(b2, 'Device'), 3)
    t.equal(del(b2, 'Device'), 3)
    t.equal(ins(b2, 'Device'), undefined)
  })

  t.test('QueryBuilder writes, by rows affected', async (t: T) => {
    const b = await run(async (em) => {
      await em.createQueryBuilder(E.Site).insert([{ name: 'q1' }, { name: 'q2' }]).execute()
      await em.createQueryBuilder(E.Site).update({ name: 'q3' }).where({ name: 'q1' }).execute()
      await em.createQueryBuilder(E.Site).delete().where({ name: { $in: ['q2', 'q3'] } }).execute()
    })
    t.equal(ins(b, 'Site'), 2)
    t.equal(upd(b, 'Site'), 1)
    t.equal(del(b, 'Site'), 2)
  })

  t.test('raw em.execute', async (t: T) => {
    const b = await run(async (em) => {
      await em.execute("insert into site (name) values ('r1'), ('r2')", [], 'run')
      await em.execute("delete from site where name = 'r1' returning id")
      await em.execute('select 1')
    })
    t.equal(ins(b, 'Site'), 2)
    t.equal(del(b, 'Site'), 1)
    t.equal(sample(b, 'db_execute_total', db6), 3)
  })

  t.test('a unique violation', async (t: T) => {
    const b = await run(async (em) => {
      await t.rejects(em.insert(E.Site, { name: 'u2' }), { name: 'UniqueConstraintViolationException' })
    })
    t.equal(sample(b, 'db_errors_total', { ...db6, type: 'UniqueConstraintViolationException' }), 1)
    t.equal(ins(b, 'Site'), undefined)
  })

  t.test('a failed flush counts nothing', async (t: T) => {
    const b = await run(async (em) => {
      em.persist([Object.assign(new E.Site(), { name: 'f1' }), Object.assign(new E.Device(), { name: 'fd' })])
      em.persist(Object.assign(new E.Site(), { name: 'u2' }))
      await t.rejects(em.flush())
    })
    t.equal(ins(b, 'Site'), undefined)
    t.equal(ins(b, 'Device'), undefined)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
  })

  t.test('a rolled-back em.transactional counts nothing', async (t: T) => {
    const b = await run(async (em) => {
      await t.rejects(em.transactional(async (tem: Any) => {
        await tem.insert(E.Site, { name: 't1' })
        tem.persist(Object.assign(new E.Device(), { name: 'td' }))
        await tem.flush()
        await tem.upsert(E.Site, { name: 't2' })
        await tem.createQueryBuilder(E.Site).update({ name: 't3' }).where({ name: 't1' }).execute()
        throw new Error('boom')
      }), /boom/)
    })
    t.equal(ins(b, 'Site'), undefined)
    t.equal(ins(b, 'Device'), undefined)
    t.equal(ups(b, 'Site'), undefined)
    t.equal(upd(b, 'Site'), undefined)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 0)
  })

  t.test('a committed em.transactional with a rolled-back nested transaction', async (t: T) => {
    const b = await run(async (em) => {
      await em.transactional(async (tem: Any) => {
        await tem.insert(E.Site, { name: 'x1' })
        tem.persist(Object.assign(new E.Device(), { name: 'xd' }))
        await tem.flush()
        await t.rejects(tem.transactional(async (inner: Any) => {
          await inner.insert(E.Site, { name: 'x2' })
          inner.persist(Object.assign(new E.Device(), { name: 'xd2' }))
          await inner.flush()
          throw new Error('inner')
        }), /inner/)
        await tem.transactional(async (inner: Any) => {
          await inner.insert(E.Site, { name: 'x3' })
        })
      })
    })
    t.equal(ins(b, 'Site'), 2, 'x1 and x3, not x2')
    t.equal(ins(b, 'Device'), 1, 'xd, not xd2')
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 0)
  })

  t.test('implicitTransactions: false: a flush outside any transaction counts each write once', async (t: T) => {
    const set = (v: boolean): void => orm.config.set('implicitTransactions', v)
    set(false)
    t.teardown(() => set(true))
    let b = await run(async (em) => {
      em.persist(Object.assign(new E.Site(), { name: 'it1' }))
      await em.flush()
    })
    t.equal(ins(b, 'Site'), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 0, 'no transaction was opened')
    b = await run(async (em) => {
      const s = await em.findOneOrFail(E.Site, { name: 'it1' })
      s.name = 'it2'
      await em.flush()
      em.remove(s)
      await em.flush()
    })
    t.equal(upd(b, 'Site'), 1)
    t.equal(del(b, 'Site'), 1)
    t.equal(ins(b, 'Site'), undefined)
  })

  t.test('a transaction that failed and then committed: PostgreSQL rolled it back, counted so', async (t: T) => {
    const b = await run(async (em) => {
      await em.transactional(async (tem: Any) => {
        await tem.insert(E.Device, { name: 'fc1' })
        await tem.insert(E.Site, { name: 'u2' }).catch(() => {}) // unique violation, caught: no savepoint
      })
      t.equal(await em.count(E.Device, { name: 'fc1' }), 0, 'PostgreSQL answered COMMIT with ROLLBACK')
      // A violation inside a savepoint rolled back to it leaves the transaction healthy.
      await em.transactional(async (tem: Any) => {
        await tem.insert(E.Device, { name: 'fc2' })
        await t.rejects(tem.transactional(async (inner: Any) => { await inner.insert(E.Site, { name: 'u2' }) }))
      })
    })
    t.equal(ins(b, 'Device'), 1, 'fc2 only')
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
    t.equal(sample(b, 'db_errors_total', { ...db6, type: 'UniqueConstraintViolationException' }), 2)
  })

  t.test('statements that begin with SQL comments: classified and counted by their first keyword', async (t: T) => {
    const b = await run(async (em) => {
      await em.createQueryBuilder(E.Site).comment('bulk').insert([{ name: 'cm1' }, { name: 'cm2' }]).execute()
      await em.createQueryBuilder(E.Site).comment('rename').update({ name: 'cm3' }).where({ name: 'cm1' }).execute()
      await em.createQueryBuilder(E.Site).comment(['a', 'b']).delete().where({ name: 'cm2' }).execute()
      await em.execute("/* app hint */ insert into site (name) values ('cm4') returning id")
      await em.execute("-- app hint\n /* nested /* comment */ */ delete from site where name in ('cm3', 'cm4')", [], 'run')
      await em.execute('/* hint */ select 1')
    })
    t.equal(ins(b, 'Site'), 3)
    t.equal(upd(b, 'Site'), 1)
    t.equal(del(b, 'Site'), 3)
    const ops = (op: string): number | undefined => sample(b, 'db_query_duration_seconds_count', { ...db6, operation: op })
    t.same([ops('insert'), ops('update'), ops('delete'), ops('select'), ops('other')], [2, 1, 2, 1, 0])
  })

  t.test('read replicas: statements on a replica counted, its pool in the gauges and its connections counted', async (t: T) => {
    const ro = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false, contextName: 'rep', pool: { min: 0, max: 2 }, replicas: [{ name: 'read-1', clientUrl: db.url }] })
    t.teardown(() => ro.close(true))
    // Both pools open before the plugin attaches (MikroORM 7 connects lazily, and checks the
    // database with a first statement): connections already open are counted when it attaches.
    await Promise.all([ro.em.fork().find('Site', {}), ro.em.fork().execute('select 1')])
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: ro })
    const Site = ro.getMetadata().find('Site').class
    const readConn = ro.em.getDriver().getConnection('read')
    t.not(readConn, ro.em.getDriver().getConnection('write'), 'reads go to the replica')
    await Promise.all([0, 1].map(async () => await ro.em.fork().find(Site, {})))
    await ro.em.fork().execute('select 1')
    const b = (await app.inject('/metrics')).body
    const rep = { context: 'rep', vendor: 'postgresql' }
    t.equal(sample(b, 'db_execute_total', rep), 3)
    t.equal(sample(b, 'db_query_duration_seconds_count', { ...rep, operation: 'select' }), 3)
    if (!poolsServed) return noPoolSeries(t, b)
    t.equal(sample(b, 'db_pool_max_connections', rep), 4, 'write pool and replica pool, 2 each')
    const open = (sample(b, 'db_pool_connections', { ...rep, state: 'idle' }) ?? 0) + (sample(b, 'db_pool_connections', { ...rep, state: 'used' }) ?? 0)
    t.ok(open >= 2, 'connections on both pools')
    t.equal(sample(b, 'db_new_connections_total', rep), open, 'every open connection of both pools was counted once')
  })

  t.test('pool exhaustion shows pending, max is the configured one', async (t: T) => {
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    // A first scrape: MikroORM 7 has a Migrator, whose queries (run by the first scrape, then cached)
    // would otherwise wait for a connection too and show in `pending`.
    await scrape()
    const sleeps = [0, 1, 2, 3, 4].map(async () => await orm.em.fork().execute('select pg_sleep(0.4)'))
    await new Promise((resolve) => setTimeout(resolve, 150))
    const b = await scrape()
    await Promise.all(sleeps)
    if (!poolsServed) return noPoolSeries(t, b)
    t.equal(sample(b, 'db_pool_connections', { ...db6, state: 'used' }), 3)
    t.equal(sample(b, 'db_pool_connections', { ...db6, state: 'pending' }), 2)
    t.equal(sample(b, 'db_pool_max_connections', db6), 3)
    const after = await scrape()
    t.equal(sample(after, 'db_pool_connections', { ...db6, state: 'pending' }), 0)
    t.ok((sample(after, 'db_new_connections_total', db6) ?? 0) >= 3)
  })

  t.test('close and reconnect', async (t: T) => {
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    await orm.em.fork().execute('select 1')
    const before = sample(await scrape(), 'db_new_connections_total', db6) ?? 0
    await orm.close()
    const closed = await scrape()
    t.equal(sample(closed, 'db_pool_connections', { ...db6, state: 'idle' }), undefined, 'no pool gauges while closed')
    t.equal(sample(closed, 'db_pool_max_connections', db6), undefined)
    await orm.reconnect()
    await orm.em.fork().execute('select 1')
    const b = await scrape()
    t.equal(sample(b, 'orm_info', { ...db6, mikro_orm_version: lib.__version }), 1)
    if (!poolsServed) return noPoolSeries(t, b)
    t.equal(sample(b, 'db_pool_max_connections', db6), 3)
    t.ok((sample(b, 'db_new_connections_total', db6) ?? 0) > before, 'connections of the new pool counted')
  })

  t.test('config-time subscriber and plugin together count once; held counts are handed over', async (t: T) => {
    const orm2 = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, debug: ['query'], logger: () => {}, allowGlobalContext: true, contextName: 'cfg', subscribers: [new MetricsSubscriber()] })
    t.teardown(() => orm2.close(true))
    const S = orm2.getMetadata().find('Site').class
    const em0 = orm2.em.fork()
    em0.persist(Object.assign(new S(), { name: 'c0' }))
    await em0.flush()
    const { app, scrape } = await appFor(orm2)
    t.teardown(() => app.close())
    const em = orm2.em.fork()
    em.persist([Object.assign(new S(), { name: 'c1' }), Object.assign(new S(), { name: 'c2' })])
    await em.flush()
    const forked = orm2.em.fork({ freshEventManager: true })
    forked.persist(Object.assign(new S(), { name: 'c3' }))
    await forked.flush()
    const b = await scrape()
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'cfg', entity: 'Site' }), 4)
  })

  t.test('two ORM instances, two contexts', async (t: T) => {
    const a = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, contextName: 'a' })
    const c = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, contextName: 'b' })
    t.teardown(async () => { await a.close(true); await c.close(true) })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: [a, c] })
    await a.em.fork().insert('Site', { name: 'ctx-a' })
    await c.em.fork().insertMany('Site', [{ name: 'ctx-b1' }, { name: 'ctx-b2' }])
    const b = (await app.inject('/metrics')).body
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'a', entity: 'Site' }), 1)
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'b', entity: 'Site' }), 2)
    t.equal(sample(b, 'orm_info', { context: 'b', vendor: 'postgresql', mikro_orm_version: lib.__version }), 1)
  })
}
