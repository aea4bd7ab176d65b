import t from 'tap'
import { join } from 'node:path'
import { truthSuite } from './helpers/orm-truth'

// MikroORM 7 (test/fixtures/orm7; its driver loads the fixture's `pg`). Needs Node >= 22.17.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 17)) {
  t.plan(0, `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`)
} else {
  const modules = join(__dirname, 'fixtures', 'orm7', 'node_modules')
  truthSuite(t, require(join(modules, '@mikro-orm', 'postgresql')), require(join(modules, 'pg')))
}
