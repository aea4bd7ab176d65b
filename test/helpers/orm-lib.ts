/**
 * Which MikroORM the ORM tests load. By default MikroORM 6 is the root devDependency and
 * MikroORM 7 the fixture test/fixtures/orm7; `FNM_MIKRO_ORM_DIR` names another install (a
 * directory whose node_modules holds `@mikro-orm/*`, e.g. test/fixtures/orm-matrix/v6-4-0, which
 * the version matrix `npm run test:orm-matrix` sets). A test file asks for the major it was
 * written for and gets the reason to skip instead when that major is not what is installed there,
 * or when this Node cannot run it (MikroORM 7 needs Node >= 22.17).
 *
 * With FNM_MIKRO_ORM_DIR the test process also moves there (process.chdir), as an app installed
 * with that MikroORM would run: MikroORM 6 checks the versions of the `@mikro-orm/*` packages
 * found from the working directory and loads `@mikro-orm/migrations` from there on demand, and
 * so does the package (lib/migrations.ts); from this checkout they would be the root's 6.6.16.
 */
import { createRequire } from 'node:module'
import { join, sep } from 'node:path'

/* eslint-disable @typescript-eslint/no-explicit-any */

/** The MikroORM under test, loaded from one install. */
export interface OrmLib {
  /** `@mikro-orm/postgresql` (a copy with `__version`: an ESM namespace is not extensible). */
  lib: any
  /** `@mikro-orm/migrations` of the same install (undefined where it is not installed). */
  migrations: any
  /** The `pg` module the driver itself loads. */
  pg: any
  /** The installed `@mikro-orm/core` version. */
  version: string
  /** Resolves a module as the driver would (for paths written into generated files). */
  resolve: (id: string) => string
}

const ROOT = join(__dirname, '..', '..')

/** The directory holding node_modules/@mikro-orm of this major, by default or from FNM_MIKRO_ORM_DIR. */
function installDir (major: 6 | 7): string {
  const dir = process.env.FNM_MIKRO_ORM_DIR
  if (dir !== undefined && dir !== '') return dir
  return major === 6 ? ROOT : join(ROOT, 'test', 'fixtures', 'orm7')
}

/**
 * Loads MikroORM `major` for a test file; returns a reason to skip the file when it cannot run
 * here (`migrations`: the file needs `@mikro-orm/migrations`, not published for every release).
 */
export function loadOrm (major: 6 | 7, { migrations = false }: { migrations?: boolean } = {}): OrmLib | string {
  const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number)
  if (major === 7 && (nodeMajor < 22 || (nodeMajor === 22 && nodeMinor < 17))) return `MikroORM 7 needs Node >= 22.17, this is ${process.versions.node}`
  const dir = installDir(major)
  const req = createRequire(join(dir, 'node_modules', 'noop.js'))
  // Node's resolution climbs to the parent directories (a fixture's to this checkout's
  // node_modules, MikroORM 6.6.16): only what is installed in `dir` counts.
  const own = (id: string): boolean => { try { return req.resolve(id).startsWith(join(dir, 'node_modules') + sep) } catch { return false } }
  for (const id of ['@mikro-orm/core/package.json', '@mikro-orm/postgresql']) if (!own(id)) return `${id.replace('/package.json', '')} is not installed in ${dir}`
  const version: string = req('@mikro-orm/core/package.json').version
  if (Number(version.split('.')[0]) !== major) return `FNM_MIKRO_ORM_DIR=${dir} holds MikroORM ${version}, this file tests MikroORM ${major}`
  if (migrations && !own('@mikro-orm/migrations')) return `@mikro-orm/migrations is not installed beside MikroORM ${version} in ${dir}`
  if (dir === process.env.FNM_MIKRO_ORM_DIR && process.cwd() !== dir) process.chdir(dir)
  const driver = createRequire(req.resolve('@mikro-orm/postgresql'))
  return {
    lib: { ...req('@mikro-orm/postgresql'), __version: version },
    migrations: own('@mikro-orm/migrations') ? req('@mikro-orm/migrations') : undefined,
    pg: driver('pg'),
    version,
    resolve: (id) => req.resolve(id)
  }
}
