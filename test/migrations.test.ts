import t from 'tap'
import { migrationsSuite } from './helpers/migrations-suite'

// MikroORM 6 (root devDependencies, @mikro-orm/migrations 6.6.16).
migrationsSuite(t, require('@mikro-orm/postgresql'), require('@mikro-orm/migrations'), 6)

t.test('migrationsTtl: validated, default 60000', async (t) => {
  const { resolveOptions } = require('../lib/options')
  t.equal(resolveOptions({}).migrationsTtl, 60000)
  t.equal(resolveOptions({ migrationsTtl: 0 }).migrationsTtl, 0)
  for (const bad of [-1, '10', Number.NaN, Infinity]) t.throws(() => resolveOptions({ migrationsTtl: bad }), { code: 'FNM_ERR_OPTION_INVALID' })
})
