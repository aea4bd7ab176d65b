/**
 * `db_migrations_applied` / `db_migrations_pending` against a real PostgreSQL, for one MikroORM
 * major (`lib` is `@mikro-orm/postgresql`, `migrations` is `@mikro-orm/migrations`, both of that
 * major). Two migrations defined in code (`migrations.migrationsList`), no files.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import netboxMetrics from '../../lib/index'
import { startDatabase } from '../../examples/db'
import { entities, sample } from './orm-suite'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

const MIGRATOR_READS = ['getExecuted', 'getPending', 'getExecutedMigrations', 'getPendingMigrations']

/** Counts the calls of the Migrator's read methods (the instance MikroORM caches and hands out). */
function spyMigrator (migrator: Any): { calls: number } {
  const spy = { calls: 0 }
  for (const name of MIGRATOR_READS) {
    if (typeof migrator[name] !== 'function') continue
    const original = migrator[name].bind(migrator)
    migrator[name] = async (...args: unknown[]) => { spy.calls++; return await original(...args) }
  }
  return spy
}

export function migrationsSuite (t: Any, lib: Any, migrations: Any, major: 6 | 7): void {
  let db: { url: string, stop: () => Promise<void> }
  t.before(async () => { db = await startDatabase() })
  t.teardown(async () => { await db?.stop() })

  class CreateA extends migrations.Migration {
    async up (): Promise<void> { this.addSql('create table mig_a (id int primary key)') }
  }
  class CreateB extends migrations.Migration {
    async up (): Promise<void> { this.addSql('create table mig_b (id int primary key)') }
  }
  const migrationsList = [{ name: 'Migration20260101000001', class: CreateA }, { name: 'Migration20260101000002', class: CreateB }]
  const labels = { context: 'default' }
  const applied = (b: string): number | undefined => sample(b, 'db_migrations_applied', labels)
  const pending = (b: string): number | undefined => sample(b, 'db_migrations_pending', labels)
  const collectorErrors = (b: string): number => sample(b, 'metrics_errors_total', { component: 'collector' }) ?? 0
  const db6 = { context: 'default', vendor: 'postgresql' }

  t.test('pending / applied before and after migrator.up(); nothing asked at start-up; TTL cache', async (t: Any) => {
    const orm = await lib.MikroORM.init({
      clientUrl: db.url,
      entities: entities(lib).schemas,
      extensions: [migrations.Migrator],
      // snapshot: false, or up() writes .snapshot-<db>.json into ./migrations of the working directory
      migrations: { migrationsList, snapshot: false },
      allowGlobalContext: true,
      debug: false
    })
    t.teardown(() => orm.close(true))
    const migrator = major === 6 ? orm.getMigrator() : orm.migrator
    const spy = spyMigrator(migrator)
    const tableExists = async (): Promise<boolean> => {
      const rows = await orm.em.fork().execute("select to_regclass('mikro_orm_migrations')::text as t")
      return rows[0].t !== null
    }

    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm, migrationsTtl: 0 })
    const cached = Fastify()
    t.teardown(() => cached.close())
    await cached.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm })
    await app.ready()
    await cached.ready()
    t.equal(spy.calls, 0, 'the Migrator is not asked at start-up')
    t.equal(await tableExists(), false, 'no migrations table created at start-up')

    let b = (await app.inject('/metrics')).body
    t.equal(pending(b), 2)
    t.equal(applied(b), 0)
    t.ok(spy.calls > 0, 'asked at the scrape')
    t.equal(collectorErrors(b), 0)
    const c = (await cached.inject('/metrics')).body
    t.equal(pending(c), 2)
    t.equal(applied(c), 0)

    // The plugin's own Migrator queries are not counted in the database families.
    const executed = sample(b, 'db_execute_total', db6)
    const callsBefore = spy.calls
    b = (await app.inject('/metrics')).body
    t.ok(spy.calls > callsBefore, 'TTL 0: asked again at the next scrape')
    t.equal(sample(b, 'db_execute_total', db6), executed, 'Migrator queries of the scrape not in db_execute_total')

    await migrator.up()
    b = (await app.inject('/metrics')).body
    t.equal(pending(b), 0)
    t.equal(applied(b), 2)
    t.equal(collectorErrors(b), 0)

    const callsCached = spy.calls
    const c2 = (await cached.inject('/metrics')).body
    t.equal(pending(c2), 2, 'default TTL (60 s): the cached count is served')
    t.equal(applied(c2), 0)
    t.equal(spy.calls, callsCached, 'and the Migrator is not asked')
  })

  t.test('absent, not zero and no error, when the ORM has no Migrator', async (t: Any) => {
    let orm: Any
    const cwd = process.cwd()
    let dir: string | undefined
    if (major === 6) {
      // MikroORM 6 finds a Migrator whenever @mikro-orm/migrations is installed beside the app;
      // an app directory without it is an app without a Migrator.
      dir = mkdtempSync(join(tmpdir(), 'fnm-nomigrator-'))
      process.chdir(dir)
      orm = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false })
    } else {
      // MikroORM 7's synchronous constructor loads no extensions: no Migrator.
      orm = new lib.MikroORM({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false })
    }
    t.teardown(async () => {
      process.chdir(cwd)
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
      await orm.close(true)
    })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm, migrationsTtl: 0 })
    await orm.em.fork().execute('select 1')
    const b = (await app.inject('/metrics')).body
    t.notMatch(b, /^db_migrations_(applied|pending)\{/m, 'no migration series')
    t.equal(collectorErrors(b), 0)
    t.ok((sample(b, 'db_execute_total', db6) ?? 0) >= 1, 'the ORM families are there')
  })
}
