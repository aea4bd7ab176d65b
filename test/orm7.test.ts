import t from 'tap'
import { writeSuite } from './helpers/orm-suite'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 7 (test/fixtures/orm7, installed by test/fixtures/install.js, or FNM_MIKRO_ORM_DIR:
// test/helpers/orm-lib.ts): the same write paths.
// MikroORM 7 requires Node >= 22.17; CI also runs the suite under Node 24, so this runs there.
const orm = loadOrm(7)
if (typeof orm === 'string') t.plan(0, orm)
else writeSuite(t, orm.lib)
