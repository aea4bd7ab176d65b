import t from 'tap'
import { truthSuite } from './helpers/orm-truth'

// MikroORM 6 (root devDependencies; its driver loads the root `pg`): the ORM and database
// families against PostgreSQL's statistics, the wire and the workload's tally.
truthSuite(t, require('@mikro-orm/postgresql'), require('pg'))
