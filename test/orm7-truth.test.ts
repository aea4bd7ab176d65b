import t from 'tap'
import { truthSuite } from './helpers/orm-truth'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 7 (test/fixtures/orm7, or FNM_MIKRO_ORM_DIR; its driver loads that install's `pg`). Needs Node >= 22.17.
const orm = loadOrm(7)
if (typeof orm === 'string') t.plan(0, orm)
else truthSuite(t, orm.lib, orm.pg)
