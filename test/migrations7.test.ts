import t from 'tap'
import { migrationsSuite } from './helpers/migrations-suite'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 7 (test/fixtures/orm7, with @mikro-orm/migrations 7.2.1, or FNM_MIKRO_ORM_DIR); needs Node >= 22.17.
const orm = loadOrm(7, { migrations: true })
if (typeof orm === 'string') t.plan(0, orm)
else migrationsSuite(t, orm.lib, orm.migrations, 7)
