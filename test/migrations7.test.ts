import t from 'tap'
import { join } from 'node:path'
import { migrationsSuite } from './helpers/migrations-suite'

// MikroORM 7 (test/fixtures/orm7, with @mikro-orm/migrations 7.2.1); needs Node >= 22.17.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 17)) {
  t.plan(0, `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`)
} else {
  const base = join(__dirname, 'fixtures', 'orm7', 'node_modules', '@mikro-orm')
  migrationsSuite(t, require(join(base, 'postgresql')), require(join(base, 'migrations')), 7)
}
