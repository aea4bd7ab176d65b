import t from 'tap'
import { migrationsSuite } from './helpers/migrations-suite'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 6 (root devDependencies, @mikro-orm/migrations 6.6.16, or FNM_MIKRO_ORM_DIR).
const mo = loadOrm(6, { migrations: true })
if (typeof mo === 'string') t.plan(0, mo)
else migrationsSuite(t, mo.lib, mo.migrations, 6)

t.test('migrationsTtl: validated, default 60000', async (t) => {
  const { resolveOptions } = require('../lib/options')
  t.equal(resolveOptions({}).migrationsTtl, 60000)
  t.equal(resolveOptions({ migrationsTtl: 0 }).migrationsTtl, 0)
  for (const bad of [-1, '10', Number.NaN, Infinity]) t.throws(() => resolveOptions({ migrationsTtl: bad }), { code: 'FNM_ERR_OPTION_INVALID' })
})

if (typeof mo !== 'string') t.test('MikroORM 6: @mikro-orm/migrations installed and a migrations folder, no Migrator in extensions', async (t) => {
  const { mkdtempSync, rmSync, writeFileSync } = require('node:fs')
  const { tmpdir } = require('node:os')
  const { join } = require('node:path')
  const Fastify = require('fastify')
  const netboxMetrics = require('../lib/index').default
  const { startDatabase } = require('../examples/db')
  const { entities, sample } = require('./helpers/orm-suite')
  const { lib, resolve } = mo
  const db = await startDatabase()
  t.teardown(() => db.stop())
  const dir = mkdtempSync(join(tmpdir(), 'fnm-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'Migration20260101000001.js'), `'use strict'
const { Migration } = require(${JSON.stringify(resolve('@mikro-orm/migrations'))})
class Migration20260101000001 extends Migration { async up () { this.addSql('create table mig_a (id int)') } }
exports.Migration20260101000001 = Migration20260101000001
`)
  // No `extensions`: MikroORM 6 loads the Migrator on demand; the plugin must see that the app uses it.
  const orm = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, migrations: { path: dir, snapshot: false }, allowGlobalContext: true, debug: false })
  t.teardown(() => orm.close(true))
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm, migrationsTtl: 0 })
  let b = (await app.inject('/metrics')).body
  t.equal(sample(b, 'db_migrations_pending', { context: 'default' }), 1)
  t.equal(sample(b, 'db_migrations_applied', { context: 'default' }), 0)
  await orm.getMigrator().up()
  b = (await app.inject('/metrics')).body
  t.equal(sample(b, 'db_migrations_pending', { context: 'default' }), 0)
  t.equal(sample(b, 'db_migrations_applied', { context: 'default' }), 1)
})
