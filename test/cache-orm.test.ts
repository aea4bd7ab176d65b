import t from 'tap'
import { cacheOrmSuite } from './helpers/cache-orm-suite'

// MikroORM 6 (root devDependencies): the result cache through InstrumentedCacheAdapter.
cacheOrmSuite(t, require('@mikro-orm/postgresql'))
