import t from 'tap'
import { defectSuite, loadMikroOrm } from './helpers/orm-defects'

// Regressions of issue 23 on MikroORM 6 (root devDependencies); MIKRO_ORM_DIR runs them against
// another install (a directory whose node_modules holds @mikro-orm/core and /postgresql).
defectSuite(t, loadMikroOrm(process.env.MIKRO_ORM_DIR))
