/**
 * Multiprocess mode across pid namespaces: two real processes started with
 * `unshare --pid --fork --mount-proc` (as root) both have pid 1 on the same host name, like two
 * containers of one pod sharing the directory. Neither may take the other for dead: each reports
 * exactly what both served, at every scrape, and each one's default metrics appear once.
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { FIXTURES, get, load, processFiles, requestsTotal, sleep, tempDir } from './helpers/multiprocess'
import { samples } from './helpers/scrape'

const FLUSH_MS = 100

function unshareAllowed (): string | undefined {
  if (process.platform !== 'linux') return 'pid namespaces are Linux only'
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'pipe' })
  if (r.error !== undefined) return `unshare is not available (${r.error.message})`
  if (r.status !== 0) return `unshare --pid --fork --mount-proc is not allowed here (${r.stderr.toString().trim()})`
  return undefined
}

interface NsProcess { child: ChildProcess, pid: number, port: number, exited: Promise<number | null> }

async function startInNamespace (dir: string): Promise<NsProcess> {
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, join(FIXTURES, 'ns-worker.js')], {
    env: { ...process.env, MP_DIR: dir, FLUSH_MS: String(FLUSH_MS) },
    stdio: ['pipe', 'pipe', 'inherit']
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const ready = await new Promise<{ pid: number, port: number }>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined && out.includes('\n')) resolve(JSON.parse(line))
    })
    void exited.then((code) => reject(new Error(`exited before ready: ${code}`)))
  })
  return { child, pid: ready.pid, port: ready.port, exited }
}

t.test('two processes with pid 1 in their own pid namespaces, one directory', async (t) => {
  const why = unshareAllowed()
  if (why !== undefined) { t.skip(why); return }
  const dir = tempDir(t)
  const started: NsProcess[] = []
  t.teardown(async () => {
    for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await Promise.all(started.map(async (p) => await p.exited))
  })
  const a = await startInNamespace(dir)
  started.push(a)
  await sleep(50) // another start time, so that the start time alone does not tell them apart
  const b = await startInNamespace(dir)
  started.push(b)
  t.same([a.pid, b.pid], [1, 1], 'both are pid 1 in their namespaces')

  await load(a.port, '/hello', 30, 2)
  await load(b.port, '/hello', 20, 2)
  await sleep(3 * FLUSH_MS)
  // Several rounds over several flush intervals: before, each took the other's live file for a
  // dead process's, merged it into the archive, and counted it again at its next write.
  const totals: number[] = []
  for (let round = 0; round < 5; round++) {
    for (const p of [a, b]) totals.push(requestsTotal((await get(p.port, '/metrics')).body, '/hello'))
    await sleep(FLUSH_MS)
  }
  t.same(totals, Array(10).fill(50), 'every scrape of either reports exactly 50')
  const s = samples((await get(a.port, '/metrics')).body)
  const starts = [...s.keys()].filter((k) => k.startsWith('process_start_time_seconds{'))
  t.equal(starts.length, 2, `one series per process: ${starts.join(' ')}`)
  t.ok(starts.every((k) => /pid="1@[0-9a-f]{8}"/.test(k)), 'same pid: told apart by node id')
  t.equal(processFiles(dir).length, 2, 'both files stay: neither was merged as dead')

  // b ends gracefully: its final snapshot is handed over; a goes on reporting it exactly.
  b.child.stdin?.end()
  t.equal(await b.exited, 0)
  await sleep(3 * FLUSH_MS)
  t.equal(requestsTotal((await get(a.port, '/metrics')).body, '/hello'), 50, 'after b exited, still 50')
  t.equal(processFiles(dir).length, 1, 'b\'s file was merged')
})
