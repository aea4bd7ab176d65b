import t from 'tap'
import { defectSuite } from './helpers/orm-defects'
import { loadOrm } from './helpers/orm-lib'

// Regressions of issue 23 on MikroORM 7 (test/fixtures/orm7, or FNM_MIKRO_ORM_DIR:
// test/helpers/orm-lib.ts; the version matrix runs them on 7.0, 7.1 and 7.2). Needs Node >= 22.17.
const orm = loadOrm(7)
if (typeof orm === 'string') t.plan(0, orm)
else defectSuite(t, orm.lib)
