import t from 'tap'
import { truthSuite } from './helpers/orm-truth'
import { loadOrm } from './helpers/orm-lib'

// MikroORM 6 (root devDependencies, or FNM_MIKRO_ORM_DIR; its driver loads that install's `pg`):
// the ORM and database families against PostgreSQL's statistics, the wire and the workload's tally.
const orm = loadOrm(6)
if (typeof orm === 'string') t.plan(0, orm)
else truthSuite(t, orm.lib, orm.pg)
