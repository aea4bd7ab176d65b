/**
 * Ctrl-C while the demo starts (a terminal's SIGINT to the whole process group, PostgreSQL
 * included), with the embedded PostgreSQL: while initdb runs, and while the ORM connects. The
 * demo stops what it started and exits 0, with a few lines and no error dump, and leaves nothing
 * in its temporary directory (its own TMPDIR) and no postgres process. Runs `dist/` (built by
 * `pretest`).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, sleep } from './helpers/net'

const root = join(__dirname, '..')

async function interrupt (t: Tap.Test, when: (output: string, tmp: string) => boolean): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'fnm-demo-tmp-'))
  chmodSync(tmp, 0o1777) // like /tmp: as root, initdb runs as postgres and reads a file from it
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, PORT: String(await freePort()), HOST: '127.0.0.1' }
  for (const k of ['DATABASE_URL', 'NODE_OPTIONS', 'DEMO_TRAFFIC']) delete env[k]
  const child = spawn(process.execPath, [join(root, 'dist', 'examples', 'demo.js')], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  let done = false
  void exited.then(() => { done = true })
  t.teardown(() => { if (!done && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL') })

  const deadline = Date.now() + 90000
  while (!when(output, tmp) && !done && Date.now() < deadline) await sleep(20)
  t.notOk(done, `still starting when interrupted:\n${output}`)
  if (child.pid !== undefined) process.kill(-child.pid, 'SIGINT') // the terminal's Ctrl-C: the whole group
  const code = await Promise.race([exited, sleep(40000).then(() => 'timeout' as const)])
  t.equal(code, 0, `exits 0:\n${output}`)
  t.match(output, /SIGINT: stopping\ndemo: stopped\n$/, 'an orderly stop')
  t.notMatch(output, /Exception|Error|failed/, 'no error dump')
  t.ok(output.split('\n').length <= 6, `a few lines (${output.split('\n').length})`)
  // (fnm-postgres-binaries-*: the reusable copy of the binaries made as root in a root-only checkout)
  t.same(readdirSync(tmp).filter((f) => !f.startsWith('fnm-postgres-binaries-')), [], 'nothing left in its temporary directory')
}

t.test('Ctrl-C while the embedded PostgreSQL is being created', { timeout: 150000 }, async (t) => {
  await interrupt(t, (_output, tmp) => readdirSync(tmp).some((f) => f.startsWith('fnm-pg-')))
})

t.test('Ctrl-C while the ORM connects', { timeout: 150000 }, async (t) => {
  await interrupt(t, (output) => output.includes('demo: database '))
})
