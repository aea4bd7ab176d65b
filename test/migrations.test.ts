import t from 'tap'
import { migrationsSuite } from './helpers/migrations-suite'

// MikroORM 6 (root devDependencies, @mikro-orm/migrations 6.6.16).
migrationsSuite(t, require('@mikro-orm/postgresql'), require('@mikro-orm/migrations'), 6)
