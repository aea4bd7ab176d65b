/**
 * Multiprocess mode with two copies of the package loaded in one process (a dependency bringing
 * its own copy): a SIGTERM still ends the process with the signal's status, and each copy writes
 * its final snapshot first. Each copy's signal listener must take the other's for one that only
 * cleans up, not for the application's own handler (which would make both wait forever).
 */
import t from 'tap'
import { fork } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ProcessSnapshot } from '../lib/multiprocess'
import { FIXTURES, processFiles, tempDir } from './helpers/multiprocess'

const ROOT = join(__dirname, '..')

t.test('SIGTERM with two copies of the package in one process', async (t) => {
  const dir = tempDir(t)
  const copies = mkdtempSync(join(tmpdir(), 'fnm-copies-'))
  t.teardown(() => rmSync(copies, { recursive: true, force: true }))
  const dirs = ['a', 'b'].map((name) => {
    for (const part of ['lib', 'hooks']) cpSync(join(ROOT, 'dist', part), join(copies, name, part), { recursive: true })
    return join(copies, name)
  })
  const child = fork(join(FIXTURES, 'two-copies.js'), [], {
    // The copies live outside the repository: they find fastify-plugin and prom-client here.
    env: { ...process.env, MP_DIR: dir, COPIES: dirs.join(','), NODE_PATH: join(ROOT, 'node_modules') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    void exited.then((e) => reject(new Error(`exited before ready: ${JSON.stringify(e)}`)))
  })
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  const exit = await exited
  clearTimeout(timer)
  t.same(exit, { code: null, signal: 'SIGTERM' }, 'the process died of SIGTERM (before: it stayed up until SIGKILLed 5 s later)')
  const files = processFiles(dir).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as ProcessSnapshot)
  t.equal(files.length, 2, 'one file per copy')
  for (const f of files) {
    t.equal(f.final, true, 'a final snapshot')
    const row = f.families.find((x) => x.name === 'http_requests_total')?.series.find((s) => s[1] === '/x')
    t.same(row, ['GET', '/x', '200', 2], 'with its app\'s 2 requests')
  }
})
