'use strict'
// Runs a command beside a PostgreSQL of its own on 127.0.0.1:5432, inside a network namespace of
// its own: `unshare -n node private-pg.js <command> [args...]` (run.js does this, as root). The
// plain and instrumented runs of MikroORM's tests then run at the same time, each on its own
// server: the upstream test files use fixed database names, which would collide on one server,
// and no upstream test can touch a database of the machine's shared server.
//
// The server is the machine's own PostgreSQL binaries (FNM_MO_PG_BIN), a fresh cluster with the
// shared server's defaults (UTF8, C.UTF-8, trust auth, user postgres), removed afterwards.
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const { join } = require('node:path')

const bin = process.env.FNM_MO_PG_BIN
const [cmd, ...args] = process.argv.slice(2)
const asPostgres = (tool, toolArgs) => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...toolArgs], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })

execFileSync('ip', ['link', 'set', 'lo', 'up'])
const dir = fs.mkdtempSync(join(os.tmpdir(), 'fnm-mo-pg-'))
let stopped = false
const stop = () => {
  if (stopped) return
  stopped = true
  try { asPostgres('pg_ctl', ['-D', join(dir, 'data'), 'stop', '-m', 'fast', '-w']) } catch {}
  fs.rmSync(dir, { recursive: true, force: true })
}
try {
  execFileSync('chown', ['postgres:', dir])
  asPostgres('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'])
  asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-l', join(dir, 'server.log'), '-w', '-o', `-k ${dir} -c listen_addresses=127.0.0.1 -p 5432`, 'start'])
} catch (err) {
  stop()
  throw err
}
const child = spawn(cmd, args, { stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => {
  stop()
  process.exitCode = code ?? 1
  if (signal) console.error(`private-pg: ${cmd} ended by ${signal}`)
})
