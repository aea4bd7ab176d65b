import t from 'tap'
import { join } from 'node:path'
import { cacheOrmSuite } from './helpers/cache-orm-suite'

// MikroORM 7 (test/fixtures/orm7): the result cache through InstrumentedCacheAdapter; needs Node >= 22.17.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 17)) {
  t.plan(0, `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`)
} else {
  cacheOrmSuite(t, require(join(__dirname, 'fixtures', 'orm7', 'node_modules', '@mikro-orm', 'postgresql')))
}
