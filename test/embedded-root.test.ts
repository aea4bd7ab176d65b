/**
 * The embedded PostgreSQL starts as root from a checkout the `postgres` user cannot enter: this
 * checkout bind-mounted below a 0700 tmpfs in a private mount namespace (`unshare -m`), the
 * built examples/db.ts run from there without DATABASE_URL, PostgreSQL itself answers the query.
 * Skips with a message when not root or without unshare.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(__dirname, '..')
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const probe = isRoot ? spawnSync('unshare', ['-m', 'true']) : undefined
const skip = !isRoot ? 'needs root (the case is root running PostgreSQL as the postgres user)' : probe?.status !== 0 ? 'unshare -m is not available here' : false

t.test('startDatabase() as root from a checkout below a 0700 directory', { skip, timeout: 180000 }, async (t) => {
  const mnt = `/mnt/fnm-root-${process.pid}`
  // The copy of the binaries that examples/db.ts makes for this (mount) path: removed afterwards.
  const hash = createHash('sha256').update(`${mnt}/repo/node_modules`).digest('hex').slice(0, 8)
  t.teardown(() => { for (const f of readdirSync(tmpdir())) if (f.startsWith('fnm-postgres-binaries-') && f.endsWith(`-${hash}`)) rmSync(join(tmpdir(), f), { recursive: true, force: true }) })
  const script = `
const { startDatabase } = require('${mnt}/repo/dist/examples/db.js')
const { Client } = require('${mnt}/repo/node_modules/pg')
;(async () => {
  const db = await startDatabase()
  const c = new Client({ connectionString: db.url }); await c.connect()
  const r = await c.query('select current_user, 6 * 7 as answer')
  console.log(r.rows[0].current_user, r.rows[0].answer)
  await c.end(); await db.stop()
})().catch((e) => { console.error(e); process.exit(1) })`
  const env = { ...process.env }
  delete env.DATABASE_URL
  delete env.NODE_OPTIONS
  const r = spawnSync('unshare', ['-m', 'sh', '-c',
    `mkdir -p ${mnt} && mount -t tmpfs -o mode=0700 tmpfs ${mnt} && mkdir ${mnt}/repo && mount --bind "$1" ${mnt}/repo && node -e "$2"; s=$?; umount ${mnt}/repo ${mnt}; rmdir ${mnt}; exit $s`,
    'sh', root, script], { encoding: 'utf8', env, timeout: 170000 })
  t.equal(`${r.stdout}`, 'postgres 42\n', `${r.stderr}`)
  t.equal(r.status, 0)
})
