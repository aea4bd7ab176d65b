import t from 'tap'
import { join } from 'node:path'
import { defectSuite, loadMikroOrm } from './helpers/orm-defects'

// Regressions of issue 23 on MikroORM 7 (test/fixtures/orm7, or MIKRO_ORM7_DIR). Needs Node >= 22.17.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 17)) {
  t.plan(0, `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`)
} else {
  defectSuite(t, loadMikroOrm(process.env.MIKRO_ORM7_DIR ?? join(__dirname, 'fixtures', 'orm7')))
}
