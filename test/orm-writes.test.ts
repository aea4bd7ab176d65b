import t from 'tap'
import { writeSuite } from './helpers/orm-suite'

// MikroORM 6 (root devDependencies): every write path, exact counts.
const lib = require('@mikro-orm/postgresql')
lib.__version = require('@mikro-orm/core/package.json').version
writeSuite(t, lib)
