/**
 * MariaDB (MikroORM 6, `@mikro-orm/mariadb` 6.6.16): a subset of the write-path suite against the
 * server at MARIADB_URL (default mysql://root@127.0.0.1:3306), on a fresh database dropped at the
 * end. Skipped, with the reason, when no MariaDB server answers.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { entityWrites, initOrm, runCase, sample } from './helpers/orm-suite'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

const lib = require('@mikro-orm/mariadb')
const server = new URL(process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/test')

async function adminQuery (sql: string): Promise<void> {
  const mariadb = require('mariadb')
  const conn = await mariadb.createConnection({ host: server.hostname, port: Number(server.port || 3306), user: decodeURIComponent(server.username || 'root'), password: decodeURIComponent(server.password), connectTimeout: 2000 })
  try {
    await conn.query(sql)
  } finally {
    await conn.end()
  }
}

async function main (): Promise<void> {
  try {
    await adminQuery('select 1')
  } catch (err) {
    t.plan(0, `no MariaDB server answers at ${server.host} (${(err as Error).message}); set MARIADB_URL`)
    return
  }
  const name = `fnm_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`
  await adminQuery(`create database \`${name}\``)
  const url = new URL(server.toString())
  url.pathname = `/${name}`
  const orm: Any = await initOrm(lib, url.toString())
  const E = orm.__entities
  t.teardown(async () => {
    await orm.close(true)
    await adminQuery(`drop database if exists \`${name}\``)
  })
  const db = { context: 'default', vendor: 'mariadb' }
  const { ins, upd, del, ups } = entityWrites
  const run = async (fn: (em: Any) => Promise<void>): Promise<string> => await runCase(orm, fn)

  t.test('flush create / update (unique property, extra updates) / delete', async (t) => {
    let b = await run(async (em) => {
      em.persist([Object.assign(new E.Site(), { name: 's1' }), Object.assign(new E.Site(), { name: 's2' }), Object.assign(new E.Site(), { name: 's3' })])
      await em.flush()
    })
    t.equal(ins(b, 'Site'), 3)
    t.equal(sample(b, 'db_transactions_total', { ...db, outcome: 'commit' }), 1)
    b = await run(async (em) => {
      for (const s of await em.find(E.Site, { name: { $in: ['s1', 's2'] } })) s.name += 'x'
      await em.flush()
    })
    t.equal(upd(b, 'Site'), 2)
    b = await run(async (em) => {
      em.remove(await em.find(E.Site, { name: { $in: ['s1x', 's2x', 's3'] } }))
      await em.flush()
    })
    t.equal(del(b, 'Site'), 3)
    t.match(b, /db_query_duration_seconds_count\{context="default",vendor="mariadb",operation="delete"\} 1\n/)
  })

  t.test('insert / insertMany / nativeUpdate / nativeDelete / QueryBuilder / raw execute', async (t) => {
    const b = await run(async (em) => {
      await em.insert(E.Device, { name: 'n1' })
      await em.insertMany(E.Device, [{ name: 'n2' }, { name: 'n3' }])
      t.equal(await em.nativeUpdate(E.Device, { name: { $in: ['n1', 'n2'] } }, { name: 'n-up' }), 2)
      await em.nativeDelete(E.Device, { name: 'n-up' })
      await em.createQueryBuilder(E.Site).insert([{ name: 'q1' }, { name: 'q2' }]).execute()
      await em.createQueryBuilder(E.Site).update({ name: 'q3' }).where({ name: 'q1' }).execute()
      await em.createQueryBuilder(E.Site).delete().where({ name: { $in: ['q2', 'q3'] } }).execute()
      await em.execute("insert into site (name) values ('r1'), ('r2')", [], 'run')
    })
    t.equal(ins(b, 'Device'), 3)
    t.equal(upd(b, 'Device'), 2)
    t.equal(del(b, 'Device'), 2)
    t.equal(ins(b, 'Site'), 4, 'QueryBuilder insert of 2 + raw insert of 2')
    t.equal(upd(b, 'Site'), 1)
    t.equal(del(b, 'Site'), 2)
  })

  t.test('upsert / upsertMany', async (t) => {
    const b = await run(async (em) => {
      await em.upsert(E.Site, { name: 'u1' })
      await em.upsertMany(E.Site, [{ name: 'u2' }, { name: 'u1' }])
    })
    t.equal(ups(b, 'Site'), 3)
    t.equal(ins(b, 'Site'), undefined, 'ON DUPLICATE KEY statements not counted again as inserts')
  })

  t.test('a unique violation, a failed flush, a rolled-back transaction', async (t) => {
    const b = await run(async (em) => {
      await t.rejects(em.insert(E.Site, { name: 'u1' }), { name: 'UniqueConstraintViolationException' })
      const em2 = em.fork()
      em2.persist([Object.assign(new E.Site(), { name: 'f1' }), Object.assign(new E.Site(), { name: 'u2' })])
      await t.rejects(em2.flush())
      await t.rejects(em.fork().transactional(async (tem: Any) => {
        await tem.insert(E.Site, { name: 't1' })
        throw new Error('boom')
      }), /boom/)
    })
    t.equal(sample(b, 'db_errors_total', { ...db, type: 'UniqueConstraintViolationException' }), 2)
    t.equal(ins(b, 'Site'), undefined)
    t.equal(sample(b, 'db_transactions_total', { ...db, outcome: 'rollback' }), 2)
  })

  t.test('pool gauges and orm_info', async (t) => {
    const b = await run(async (em) => { await em.execute('select 1') })
    t.equal(sample(b, 'db_pool_max_connections', db), 3)
    t.ok((sample(b, 'db_new_connections_total', db) ?? 0) >= 1)
    t.equal(sample(b, 'orm_info', { ...db, mikro_orm_version: require('@mikro-orm/core/package.json').version }), 1)
  })
}

main().catch((err) => { t.fail(err) })
