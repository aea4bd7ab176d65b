/**
 * Regressions of issue 23, run against one MikroORM (the library module is passed in, as in
 * orm-suite.ts): each case failed before its fix. Exact values, real PostgreSQL.
 */
import Fastify from 'fastify'
import netboxMetrics from '../../lib/index'
import { MetricsSubscriber } from '../../hooks/orm'
import { startDatabase } from '../../examples/db'
import { appFor, entities, initOrm, sample, entityWrites } from './orm-suite'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any
type T = Any

/** Runs the regression cases against `lib`. */
export function defectSuite (t: T, lib: Any): void {
  let db: { url: string, stop: () => Promise<void> }
  let orm: Any
  let E: ReturnType<typeof entities>
  const { ins, upd } = entityWrites
  const db6 = { context: 'default', vendor: 'postgresql' }
  const [major, minor] = String(lib.__version).split('.').map(Number)

  t.before(async () => {
    db = await startDatabase()
    orm = await initOrm(lib, db.url)
    E = orm.__entities
  })
  t.teardown(async () => {
    await orm?.close(true)
    await db?.stop()
  })

  t.test('1: a spy on the connection class installed after the ORM is instrumented still runs; the instance gets no own keys', async (t: T) => {
    const conn = orm.em.getDriver().getConnection('write')
    await orm.em.fork().execute('select 1') // connected
    const keys = Reflect.ownKeys(conn)
    const ormKeys = Reflect.ownKeys(orm)
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    t.same(Reflect.ownKeys(conn), keys, 'no own property or symbol added to the connection')
    t.same(Reflect.ownKeys(orm), ormKeys, 'nor to the ORM')
    t.ok(conn instanceof lib.AbstractSqlConnection)
    const proto = lib.AbstractSqlConnection.prototype
    const calls: Record<string, number> = { execute: 0, begin: 0, commit: 0, rollback: 0 }
    const saved: Record<string, Any> = {}
    for (const name of Object.keys(calls)) {
      saved[name] = proto[name]
      proto[name] = function spy (this: Any, ...args: unknown[]) { calls[name]++; return saved[name].apply(this, args) }
    }
    try {
      const em = orm.em.fork()
      await em.findOne(E.Site, { name: 'nobody' })
      await em.transactional(async (tem: Any) => { await tem.execute('select 1') })
      await t.rejects(em.transactional(async () => { throw new Error('no') }))
    } finally {
      for (const name of Object.keys(calls)) proto[name] = saved[name]
    }
    t.same(calls, { execute: 2, begin: 2, commit: 1, rollback: 1 }, 'every patched method ran once per call')
    const b = await scrape()
    t.equal(sample(b, 'db_execute_total', db6), 2, 'and the package still counted')
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
  })

  t.test('2: savepoints: commit, rollback and inserts exact (no savepointName before 6.5)', async (t: T) => {
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    await orm.em.fork().transactional(async (tem: Any) => {
      await tem.insert(E.Site, { name: 'sp1' })
      await t.rejects(tem.transactional(async (inner: Any) => {
        await inner.insert(E.Site, { name: 'sp2' })
        throw new Error('inner')
      }))
      await tem.transactional(async (inner: Any) => {
        await inner.insert(E.Site, { name: 'sp3' })
        await inner.transactional(async (deeper: Any) => { await deeper.insert(E.Site, { name: 'sp4' }) })
      })
    })
    const b = await scrape()
    t.equal(await orm.em.fork().count(E.Site, { name: { $like: 'sp%' } }), 3, 'PostgreSQL kept sp1, sp3, sp4')
    t.equal(ins(b, 'Site'), 3)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 0)
  })

  t.test('3: what the probe finds is served; what is missing is left out, counted once, warned once with the version', async (t: T) => {
    const warnings: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm })
    await orm.em.fork().execute('select 1')
    const b = (await app.inject('/metrics')).body
    t.equal(sample(b, 'orm_info', { ...db6, mikro_orm_version: lib.__version }), 1, `version ${lib.__version as string} read from the package`)
    const nativeClient = major === 6 || minor >= 2
    if (nativeClient) {
      t.equal(sample(b, 'metrics_errors_total', { component: 'orm' }), 0)
      t.same(warnings, [])
      t.ok((sample(b, 'db_pool_max_connections', db6) ?? 0) > 0, 'pool gauges served')
    } else {
      t.equal(sample(b, 'metrics_errors_total', { component: 'orm' }), 1)
      t.equal(warnings.length, 1)
      t.match(warnings[0], `MikroORM ${lib.__version as string}`)
      t.match(warnings[0], 'getNativeClient()')
      t.notMatch(b, /^db_pool_connections\{/m, 'pool gauges left out')
      t.notMatch(b, /^db_pool_max_connections\{/m)
      t.notMatch(b, /^db_new_connections_total\{/m, 'new connections left out, not 0')
    }
  })

  t.test('4: a flush that fails before sending SQL inside the app\'s transaction leaves no flushing mark', async (t: T) => {
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    const em = orm.em.fork()
    await em.begin()
    em.persist(new E.Site()) // name is required: MikroORM refuses before any SQL
    await t.rejects(em.flush())
    em.clear()
    await em.insert(E.Site, { name: 'ff1' })
    await em.insertMany(E.Site, [{ name: 'ff2' }, { name: 'ff3' }])
    await em.nativeUpdate(E.Site, { name: 'ff3' }, { name: 'ff3u' })
    await em.commit()
    const b = await scrape()
    t.equal(await orm.em.fork().count(E.Site, { name: { $like: 'ff%' } }), 3)
    t.equal(ins(b, 'Site'), 3)
    t.equal(upd(b, 'Site'), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 1)
  })

  t.test('5: one MetricsSubscriber in the config of two ORMs counts each ORM\'s flushes for that ORM', async (t: T) => {
    const sub = new MetricsSubscriber()
    const opts = (contextName: string): Any => ({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false, contextName, subscribers: [sub] })
    const a = await lib.MikroORM.init(opts('a'))
    const c = await lib.MikroORM.init(opts('b'))
    t.teardown(async () => { await a.close(true); await c.close(true) })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: [a, c] })
    const S = a.getMetadata().find('Site').class
    const em = a.em.fork()
    em.persist(Object.assign(new S(), { name: 'two-a1' }))
    await em.flush()
    await t.rejects(a.em.fork().transactional(async (tem: Any) => {
      tem.persist(Object.assign(new S(), { name: 'two-a2' }))
      await tem.flush()
      throw new Error('rolled back')
    }))
    const b = (await app.inject('/metrics')).body
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'a', entity: 'Site' }), 1)
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'b', entity: 'Site' }), undefined, 'nothing for b, which wrote nothing')
  })

  t.test('an ORM with MikroORM\'s default allowGlobalContext (false) is attached without touching the global context, and counts', async (t: T) => {
    const strict = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, debug: false, contextName: 'strict', subscribers: [new MetricsSubscriber()] })
    t.teardown(async () => { await strict.close(true) })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: strict })
    t.throws(() => strict.em.getUnitOfWork(), /global EntityManager/, 'the global context is still refused to the app, as MikroORM does')
    const S = strict.getMetadata().find('Site').class
    const em = strict.em.fork()
    em.persist(Object.assign(new S(), { name: 'strict-1' }))
    await em.flush()
    const b = (await app.inject('/metrics')).body
    t.equal(sample(b, 'orm_entity_inserts_total', { context: 'strict', entity: 'Site' }), 1)
    // 1 on 7.0 and 7.1: their missing getNativeClient() (test 3), nothing else.
    t.equal(sample(b, 'metrics_errors_total', { component: 'orm' }), major === 7 && minor < 2 ? 1 : 0)
  })

  t.test('6: implicitTransactions false: M:N pivot rows are not counted as an entity', async (t: T) => {
    class Post { id!: number; title!: string; labels: Any }
    class Label { id!: number; name!: string }
    const id = (): Record<string, unknown> => ({ type: 'number', primary: true, autoincrement: true })
    const schemas = [
      new lib.EntitySchema({ class: Post, tableName: 'pv_post', properties: { id: id(), title: { type: 'string' }, labels: { kind: 'm:n', entity: () => Label, owner: true, pivotTable: 'pv_post_labels' } } }),
      new lib.EntitySchema({ class: Label, tableName: 'pv_label', properties: { id: id(), name: { type: 'string' } } })
    ]
    const pv = await lib.MikroORM.init({ clientUrl: db.url, entities: schemas, allowGlobalContext: true, debug: false, contextName: 'pv', implicitTransactions: false })
    t.teardown(() => pv.close(true))
    const gen = typeof pv.getSchemaGenerator === 'function' ? pv.getSchemaGenerator() : pv.schema
    await (typeof gen.createSchema === 'function' ? gen.createSchema() : gen.create())
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: pv })
    const em = pv.em.fork()
    const post = em.create(Post, { title: 'p1' })
    post.labels.add(em.create(Label, { name: 'l1' }), em.create(Label, { name: 'l2' }))
    await em.flush()
    const [{ n }] = await pv.em.fork().execute('select count(*)::int as n from pv_post_labels')
    t.equal(n, 2, 'two pivot rows written')
    const b = (await app.inject('/metrics')).body
    const series = b.split('\n').filter((l) => l.startsWith('orm_entity_inserts_total{context="pv"'))
    t.same(series.sort(), ['orm_entity_inserts_total{context="pv",entity="Label"} 2', 'orm_entity_inserts_total{context="pv",entity="Post"} 1'])
  })

  t.test('7: a COMMIT PostgreSQL refuses (deferred foreign key) counts as a rollback, once', async (t: T) => {
    await orm.em.fork().execute('create table dfk_parent (id int primary key)')
    await orm.em.fork().execute('create table dfk_child (id serial primary key, parent_id int references dfk_parent (id) deferrable initially deferred)')
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    const em = orm.em.fork()
    await em.begin()
    await em.execute('insert into dfk_child (parent_id) values (999)')
    await t.rejects(em.commit(), { code: '23503' })
    let b = await scrape()
    t.equal(await orm.em.fork().count('Site', { name: 'never' }), 0)
    t.same((await orm.em.fork().execute('select count(*)::int as n from dfk_child'))[0].n, 0, 'PostgreSQL rolled it back')
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 0)
    // An app that does call rollback afterwards (MikroORM 7.0 keeps the connection until it does): still one.
    await em.rollback().catch(() => {})
    b = await scrape()
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 1)
    // Same through em.transactional (MikroORM calls rollback after the failed COMMIT): still one.
    await t.rejects(orm.em.fork().transactional(async (tem: Any) => { await tem.execute('insert into dfk_child (parent_id) values (998)') }))
    b = await scrape()
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'rollback' }), 2)
    t.equal(sample(b, 'db_transactions_total', { ...db6, outcome: 'commit' }), 0)
  })

  t.test('concurrent scrapes: each has the pool gauges', async (t: T) => {
    const { app, scrape } = await appFor(orm)
    t.teardown(() => app.close())
    await orm.em.fork().execute('select 1')
    await scrape() // the first scrape runs the Migrator's queries (MikroORM 7), later ones reuse them
    if (major === 7 && minor < 2) return
    // Each scrape collects every family concurrently, then renders: another scrape's pool collector
    // must not leave the families cleared while it awaits the pools.
    let missing = 0
    for (let round = 0; round < 20; round++) {
      const bodies = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async () => await scrape()))
      for (const b of bodies) if (sample(b, 'db_pool_max_connections', db6) !== 3 || sample(b, 'db_pool_connections', { ...db6, state: 'idle' }) === undefined) missing++
    }
    t.equal(missing, 0, 'pool gauges in all 160 scrapes')
  })
}
