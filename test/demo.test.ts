/**
 * The demo app, run as a user runs it: `npm run demo -- --traffic` (which builds first), on a
 * free port, with its own embedded PostgreSQL unless DATABASE_URL is set. The test waits for the
 * URLs, lets the traffic run until every family has values, scrapes /metrics and checks the HTTP,
 * cache, ORM and database families, then presses Ctrl-C (SIGINT to the process group, like a
 * terminal) and checks the exit code and that no PostgreSQL process or data directory is left.
 */
import t from 'tap'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { freePort, get, sleep } from './helpers/net'
import { join } from 'node:path'

const root = join(__dirname, '..')

// npm run demo builds the project first and starts PostgreSQL: more than .taprc's 120 s may be needed.
t.setTimeout(300000)

interface Sample { name: string, labels: Record<string, string>, value: number }

function parseExposition (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    out.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of the samples of `name` whose labels include `match`; -1 when there is no such sample. */
function total (samples: Sample[], name: string, match: Record<string, string> = {}): number {
  let found = false
  let sum = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue
    found = true
    sum += s.value
  }
  return found ? sum : -1
}



/** PIDs of the processes whose command line contains `needle` (pgrep -f). */
function pgrep (needle: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', needle], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('npm run demo -- --traffic: every family has values, Ctrl-C leaves nothing running', { timeout: 240000 }, async (t) => {
  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', DEMO_TRAFFIC_RATE: '40' }
  delete env.DEMO_TRAFFIC
  delete env.METRICS_ENABLED
  const child: ChildProcess = spawn('npm', ['run', 'demo', '--', '--traffic'], {
    cwd: root,
    env,
    detached: true, // its own process group, so that SIGINT reaches it like a terminal's Ctrl-C
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (c: string) => { output += c })
  child.stderr?.setEncoding('utf8').on('data', (c: string) => { output += c })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  let exitedYet = false
  void exited.then(() => { exitedYet = true })
  let postgresPid: number | undefined

  t.teardown(async () => {
    if (!exitedYet && child.pid !== undefined) {
      try { process.kill(-child.pid, 'SIGKILL') } catch { /* gone */ }
    }
    if (postgresPid !== undefined && alive(postgresPid)) {
      try { process.kill(postgresPid, 'SIGQUIT') } catch { /* gone */ }
    }
    if (t.passing() === false) console.error(`--- demo output ---\n${output}`)
  })

  // 1. The URLs line (npm run demo builds first, then starts PostgreSQL).
  const deadline = Date.now() + 150000
  let metricsUrl: string | undefined
  while (metricsUrl === undefined) {
    metricsUrl = /demo: metrics (http:\/\/\S+\/metrics)/.exec(output)?.[1]
    if (metricsUrl !== undefined) break
    if (exitedYet) t.fail(`the demo exited before printing its URLs:\n${output}`)
    if (Date.now() > deadline) t.fail(`no URLs line after 150 s:\n${output}`)
    if (exitedYet || Date.now() > deadline) return
    await sleep(200)
  }
  t.equal(metricsUrl, `http://127.0.0.1:${port}/metrics`, 'prints the metrics URL on PORT')
  t.match(output, new RegExp(`demo: API\\s+http://127\\.0\\.0\\.1:${port}/api/dcim/`), 'prints the API URL')

  const dbLine = /demo: database (\S+) \((embedded|dropped)/.exec(output)
  t.ok(dbLine, 'prints the database it uses')
  const embedded = dbLine?.[2] === 'embedded'
  let dataDir: string | undefined
  if (embedded && dbLine !== null) {
    const dbPort = new URL(dbLine[1]).port
    // The postmaster is the process whose command line is `…/postgres -D <dir> -p <port>`.
    let pids: number[] = []
    for (let i = 0; i < 20 && pids.length === 0; i++) {
      pids = pgrep(`bin/postgres -D \\S+ -p ${dbPort}( |$)`)
      if (pids.length === 0) await sleep(100)
    }
    t.ok(pids.length >= 1, `the embedded postgres is running (pids ${pids.join(', ')})`)
    postgresPid = pids[0]
    if (postgresPid !== undefined) {
      const cmd = execFileSync('ps', ['-o', 'args=', '-p', String(postgresPid)], { encoding: 'utf8' })
      dataDir = / -D (\S+)/.exec(cmd)?.[1]
      t.ok(dataDir !== undefined && existsSync(dataDir), 'its data directory exists while it runs')
    }
  }

  const api = metricsUrl.replace(/\/metrics$/, '')
  const r = await get(`${api}/api/dcim/devices?q=ams&limit=5`)
  t.equal(r.status, 200, 'the search route answers')
  t.ok(JSON.parse(r.body).count > 0, 'and finds seeded devices')

  // 2. Let the traffic run until every family has values (at most 60 s), one slow request in flight.
  const wanted: Array<[string, string, Record<string, string>]> = [
    // HTTP
    ['http', 'http_requests_received_total', { method: 'GET' }],
    ['http', 'http_requests_received_total', { method: 'POST' }],
    ['http', 'http_requests_total', { method: 'GET', route: '/api/dcim/devices', status_code: '200' }],
    ['http', 'http_requests_total', { method: 'POST', route: '/api/dcim/devices', status_code: '201' }],
    ['http', 'http_requests_total', { method: 'POST', route: '/api/dcim/devices', status_code: '409' }],
    ['http', 'http_requests_total', { method: 'POST', route: '/api/dcim/devices', status_code: '400' }],
    ['http', 'http_requests_total', { method: 'POST', route: '/api/dcim/devices/bulk', status_code: '201' }],
    ['http', 'http_requests_total', { method: 'DELETE', route: '/api/dcim/devices/:id', status_code: '204' }],
    ['http', 'http_requests_total', { method: 'PUT', route: '/api/dcim/devices/:id/interfaces', status_code: '200' }],
    ['http', 'http_requests_total', { method: 'GET', route: '__unmatched__', status_code: '404' }],
    ['http', 'http_request_duration_seconds_count', { route: '/api/dcim/sites' }],
    ['http', 'http_request_phase_duration_seconds_count', { phase: 'handler' }],
    ['http', 'http_request_phase_duration_seconds_count', { phase: 'onRequest' }],
    ['http', 'http_request_phase_duration_seconds_count', { phase: 'preHandler' }],
    ['http', 'http_request_size_bytes_count', { method: 'POST' }],
    ['http', 'http_request_size_bytes_sum', { method: 'POST' }],
    ['http', 'http_response_size_bytes_count', { method: 'GET' }],
    ['http', 'http_requests_in_flight', { method: 'GET' }],
    ['http', 'http_requests_aborted_total', { route: '/api/status' }],
    ['http', 'http_exceptions_total', { route: '/api/dcim/devices' }],
    // Caches
    ['cache', 'cache_get_total', { cache: 'device-lookups' }],
    ['cache', 'cache_get_hits_total', { cache: 'device-lookups' }],
    ['cache', 'cache_get_misses_total', { cache: 'device-lookups' }],
    ['cache', 'cache_set_total', { cache: 'device-lookups' }],
    ['cache', 'cache_invalidations_total', { cache: 'device-lookups' }],
    ['cache', 'cache_get_hits_total', { cache: 'orm-result' }],
    ['cache', 'cache_get_misses_total', { cache: 'orm-result' }],
    ['cache', 'cache_set_total', { cache: 'orm-result' }],
    // Metadata
    ['meta', 'fastify_info', {}]
  ]
  wanted.push(
      ['orm', 'orm_entity_inserts_total', { context: 'default', entity: 'Device' }],
      ['orm', 'orm_entity_inserts_total', { entity: 'Interface' }],
      ['orm', 'orm_entity_inserts_total', { entity: 'Rack' }],
      ['orm', 'orm_entity_updates_total', { entity: 'Device' }],
      ['orm', 'orm_entity_deletes_total', { entity: 'Device' }],
      ['orm', 'orm_entity_deletes_total', { entity: 'Interface' }],
      ['orm', 'orm_entity_upserts_total', { entity: 'Site' }],
      ['orm', 'orm_info', { context: 'default', vendor: 'postgresql' }],
      ['db', 'db_new_connections_total', { context: 'default', vendor: 'postgresql' }],
      ['db', 'db_execute_total', { context: 'default', vendor: 'postgresql' }],
      ['db', 'db_errors_total', { type: 'UniqueConstraintViolationException' }],
      ['db', 'db_query_duration_seconds_count', { operation: 'select' }],
      ['db', 'db_query_duration_seconds_count', { operation: 'insert' }],
      ['db', 'db_query_duration_seconds_count', { operation: 'update' }],
      ['db', 'db_query_duration_seconds_count', { operation: 'delete' }],
      ['db', 'db_transactions_total', { outcome: 'commit' }],
      ['db', 'db_transactions_total', { outcome: 'rollback' }],
      ['db', 'db_pool_connections', { context: 'default' }],
    ['db', 'db_pool_max_connections', { context: 'default' }]
  )

  let samples: Sample[] = []
  let missing: string[] = []
  // Statuses of the scrapes that are not 200; asserted once after the loop, whose number of turns
  // depends on how fast the traffic fills every family (one assertion per turn made the test's
  // check count vary from run to run).
  const failedScrapes: number[] = []
  const until = Date.now() + 60000
  do {
    await sleep(1000)
    const slow = get(`${api}/api/status?delay=1500`, 10000).catch(() => undefined) // in flight during the scrape
    await sleep(100)
    const scrape = await get(metricsUrl)
    await slow
    if (scrape.status !== 200) failedScrapes.push(scrape.status)
    samples = parseExposition(scrape.body)
    missing = wanted.filter(([, name, match]) => !(total(samples, name, match) > 0)).map(([, n, m]) => `${n}${JSON.stringify(m)}`)
  } while (missing.length > 0 && Date.now() < until && !exitedYet)
  t.same(failedScrapes, [], 'GET /metrics answers 200 to every scrape')
  t.same(missing, [], 'every wanted series has a value > 0')
  for (const [group, name, match] of wanted) {
    t.ok(total(samples, name, match) > 0, `${group}: ${name}${JSON.stringify(match)} > 0`)
  }
  {
    t.ok(total(samples, 'db_new_connection_errors_total', { context: 'default' }) >= 0, 'db_new_connection_errors_total is exposed')
    t.equal(total(samples, 'db_pool_max_connections', { context: 'default' }), 10, 'db_pool_max_connections is the configured pool max')
    t.ok(total(samples, 'db_pool_connections', { state: 'pending' }) >= 0, 'db_pool_connections{state="pending"} is exposed')
  }
  t.ok(total(samples, 'http_response_size_bytes_sum', { method: 'GET' }) > 0, 'http_response_size_bytes_sum{method="GET"} > 0')
  // The HTTP invariant holds only at a quiet moment, so it is not checked under traffic; but no
  // label ever carries a raw URL or a query string.
  t.notOk(samples.some((s) => /[?]|\/\d+(\/|$)/.test(s.labels.route ?? '')), 'no raw URL in any route label')

  // 3. SIGINT to the demo process (npm run demo -> sh -> node dist/examples/demo.js), so that its
  // own exit code reaches npm. (A terminal's Ctrl-C reaches the whole group, PostgreSQL included;
  // npm then ends itself by SIGINT whatever the demo's code, so the exit code is checked this way.)
  const demoPids = child.pid === undefined ? [] : pgrep('^node .*dist/examples/demo\\.js').filter((pid) => {
    try { return execFileSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }).trim() === String(child.pid) } catch { return false }
  })
  t.equal(demoPids.length, 1, 'one demo process runs under npm')
  for (const pid of demoPids) process.kill(pid, 'SIGINT')
  const timeout = sleep(30000).then(() => 'timeout' as const)
  const result = await Promise.race([exited, timeout])
  if (result === 'timeout') {
    t.fail(`the demo did not exit within 30 s of SIGINT:\n${output}`)
    return
  }
  t.same(result, { code: 0, signal: null }, 'npm run demo exits with code 0')
  t.match(output, /demo: stopped\n/, 'the demo reports an orderly stop')
  t.notMatch(output, /demo: [a-z ]+ failed:/, 'no shutdown step failed')

  // 4. Nothing left running.
  await sleep(200)
  t.same(pgrep(`dist/examples/demo.js`).filter((pid) => {
    try { return execFileSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }).trim() === String(child.pid) } catch { return false }
  }), [], 'no demo process is left in its process group')
  if (embedded) {
    t.ok(postgresPid !== undefined && !alive(postgresPid), 'the embedded postgres has exited')
    t.ok(dataDir !== undefined && !existsSync(dataDir), 'its data directory is removed')
    const port = new URL(dbLine?.[1] ?? 'http://x:1').port
    t.same(pgrep(`bin/postgres -D \\S+ -p ${port}( |$)`), [], 'no postgres process on its port')
  }
  let listening = true
  await get(metricsUrl, 2000).catch(() => { listening = false })
  t.notOk(listening, 'the HTTP port is closed')
})
