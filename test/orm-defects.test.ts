import t from 'tap'
import { defectSuite } from './helpers/orm-defects'
import { loadOrm } from './helpers/orm-lib'

// Regressions of issue 23 on MikroORM 6 (root devDependencies, or FNM_MIKRO_ORM_DIR:
// test/helpers/orm-lib.ts; the version matrix runs them on 6.4, 6.5 and 6.6).
const orm = loadOrm(6)
if (typeof orm === 'string') t.plan(0, orm)
else defectSuite(t, orm.lib)
