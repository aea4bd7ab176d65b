import t from 'tap'
import { join } from 'node:path'
import { writeSuite } from './helpers/orm-suite'

// MikroORM 7 (test/fixtures/orm7, installed by test/fixtures/install.js): the same write paths.
// MikroORM 7 requires Node >= 22.17; CI also runs the suite under Node 24, so this runs there.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 17)) {
  t.plan(0, `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`)
} else {
  const base = join(__dirname, 'fixtures', 'orm7', 'node_modules', '@mikro-orm')
  // An ESM namespace is not extensible: copy it.
  const lib = { ...require(join(base, 'postgresql')), __version: require(join(base, 'core', 'package.json')).version }
  writeSuite(t, lib)
}
