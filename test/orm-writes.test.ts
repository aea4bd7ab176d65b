import t from 'tap'
import { writeSuite } from './helpers/orm-suite'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 6 (root devDependencies, or FNM_MIKRO_ORM_DIR: test/helpers/orm-lib.ts): every write path, exact counts.
const orm = loadOrm(6)
if (typeof orm === 'string') t.plan(0, orm)
else writeSuite(t, orm.lib)
