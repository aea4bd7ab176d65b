/**
 * End to end with a real Prometheus: start the demo app (`dist/examples/demo.js`, its own
 * embedded PostgreSQL unless DATABASE_URL is set, no generated traffic), start Prometheus from
 * Debian's package on loopback with a temporary data directory, a 1 s scrape interval and the
 * kit's recording rules, send a known number of requests to one route, and check through
 * Prometheus's HTTP API that the target is up, that the counts are what was sent and, once the
 * demo has stopped, that the recording rules agree with the expressions they record. Both
 * processes are stopped whatever happens. Skipped when Prometheus is not installed or the demo
 * has not been built.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { Proc } from './helpers/proc'
import { prometheusApi, startPrometheus } from './helpers/prometheus'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { freePort, get, sleep } from './helpers/net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(__dirname, '..')
const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus'
const demoScript = join(root, 'dist', 'examples', 'demo.js')
const recordingRules = join(root, 'docs', 'prometheus', 'recording-rules.yml')

const haveProm = existsSync(PROMETHEUS) && spawnSync(PROMETHEUS, ['--version']).status === 0
const skip = !haveProm
  ? `${PROMETHEUS} is not installed (Debian: apt-get install prometheus); .ci/run installs it`
  : !existsSync(demoScript) ? `${demoScript} is not built (npm run build)` : false

/** The route the test drives, as a template and as the URLs sent. */
const ROUTE = '/api/dcim/sites/:id'
const FIRST_BATCH = 7
const SECOND_BATCH = 30
const SENT = FIRST_BATCH + SECOND_BATCH




t.test('a real Prometheus scrapes the demo app', { skip, timeout: 240000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'fnm-e2e-prom-'))
  const procs: Proc[] = []
  t.teardown(async () => {
    // Prometheus first (it would only log failed scrapes), then the demo, which stops its
    // database on SIGTERM (20 s at most), then the files.
    for (const p of [...procs].reverse()) await p.stop(p.name === 'demo' ? 25000 : 5000)
    if (t.passing() === false) for (const p of procs) console.error(`--- ${p.name} output ---\n${p.output.slice(-4000)}`)
    rmSync(tmp, { recursive: true, force: true })
  })

  // 1. The demo app, without traffic: every request it serves is one of ours.
  const demoPort = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(demoPort), HOST: '127.0.0.1' }
  delete env.DEMO_TRAFFIC
  delete env.DEMO_LOG
  const demo = new Proc('demo', spawn(process.execPath, [demoScript], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }))
  procs.push(demo)
  const base = `http://127.0.0.1:${demoPort}`
  const demoDeadline = Date.now() + 150000
  while (!demo.output.includes(`demo: metrics ${base}/metrics`)) {
    if (demo.exited || Date.now() > demoDeadline) {
      t.fail(`the demo did not start:\n${demo.output}`)
      return
    }
    await sleep(200)
  }

  // 2. Prometheus on loopback, scraping the demo every second and evaluating the recording rules.
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    `  - ${JSON.stringify(recordingRules)}`,
    'scrape_configs:',
    '  - job_name: netbox',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${demoPort}']`,
    ''
  ].join('\n')
  const { proc: prom, api } = await startPrometheus(PROMETHEUS, tmp, config)
  procs.push(prom)

  const { query, waitFor, value } = prometheusApi(api, () => prom.exited)

  const readyDeadline = Date.now() + 30000
  for (;;) {
    const ready = await get(`${api}/-/ready`).catch(() => undefined)
    if (ready?.status === 200) break
    if (prom.exited || Date.now() > readyDeadline) {
      t.fail(`Prometheus did not become ready:\n${prom.output}`)
      return
    }
    await sleep(200)
  }

  // 3. The target is up.
  const up = await waitFor('up{job="netbox"}', (r) => value(r) === 1)
  t.equal(value(up), 1, 'up{job="netbox"} is 1')
  t.equal(up[0]?.metric.instance, `127.0.0.1:${demoPort}`, 'the target is the demo')
  t.same(await query(`http_requests_total{route="${ROUTE}"}`), [], 'no request to the route yet')

  // 4. Two batches, with a scrape in between, so that the counter has a start value and its
  // rate is defined. Ids 1..3 exist (the demo seeds 3 sites): all 200s, one route template.
  const send = async (n: number, offset: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const r = await get(`${base}/api/dcim/sites/${((offset + i) % 3) + 1}`)
      if (r.status !== 200) t.fail(`GET /api/dcim/sites/${((offset + i) % 3) + 1} answered ${r.status}: ${r.body}`)
    }
  }
  const sentSelector = `http_requests_total{job="netbox", route="${ROUTE}"}`
  await send(FIRST_BATCH, 0)
  const first = await waitFor(`sum(${sentSelector})`, (r) => value(r) === FIRST_BATCH)
  t.equal(value(first), FIRST_BATCH, `Prometheus sees the first ${FIRST_BATCH} requests`)
  await send(SECOND_BATCH, FIRST_BATCH)
  const total = await waitFor(`sum(${sentSelector})`, (r) => value(r) === SENT)
  t.equal(value(total), SENT, `sum(http_requests_total{route="${ROUTE}"}) is the ${SENT} requests sent`)

  const byLabels = await query(sentSelector)
  t.same(byLabels.map((s) => [s.metric.method, s.metric.status_code, s.value[1]]), [['GET', '200', String(SENT)]], 'all GET 200, under the route template')
  t.equal(value(await query('sum(http_requests_received_total{job="netbox"})')), SENT, 'every request received is one of ours (the scrapes are not counted)')
  t.equal(value(await query(`sum(http_request_duration_seconds_count{job="netbox", route="${ROUTE}"})`)), SENT, 'the latency histogram counted each once')
  t.equal(value(await query(`sum(http_request_duration_seconds_bucket{job="netbox", route="${ROUTE}", le="+Inf"})`)), SENT, 'its +Inf bucket too')

  // 5. The recording rule route:http_requests:rate5m shows the second batch's increase.
  const record = `route:http_requests:rate5m{job="netbox", route="${ROUTE}"}`
  const recorded = await waitFor(`${record} > 0`, (r) => r.length === 1, 20000)
  t.equal(recorded.length, 1, `${record} has been evaluated`)
  // rate() extrapolates the increase it sees by up to half a scrape interval at each end of the
  // data, which matters while the series is seconds old: within a few seconds the record shows
  // the second batch's 30 requests over 5 minutes (the first batch created the series).
  const settled = await waitFor(record, (r) => value(r) * 300 >= SECOND_BATCH * 0.999 && value(r) * 300 <= SECOND_BATCH * 1.25, 30000)
  t.ok(value(settled) * 300 >= SECOND_BATCH * 0.999 && value(settled) * 300 <= SECOND_BATCH * 1.25, `the record shows the ${SECOND_BATCH} requests of the second batch over 5 m (${value(settled) * 300})`)

  // 6. The records equal the expressions they record. Prometheus evaluates a rule at time T over
  // the samples committed when it runs, and a scrape stamped just before T can commit just after
  // it (on a loaded machine, at every evaluation), so while the target is scraped a rule, the
  // next rule of its group and a later query of its expression at T can each see different data.
  // So the demo stops first: Prometheus sees the target down and the series end, and every
  // evaluation stamped after that reads the same final samples.
  // A target's scrapes run one at a time, so once a scrape started after the exit is recorded,
  // every earlier one has been committed.
  await demo.stop(25000)
  const stopped = Date.now() / 1000
  await waitFor('timestamp(up{job="netbox"})', (r) => value(r) > stopped, 20000)
  t.equal(value(await query('up{job="netbox"}')), 0, 'up{job="netbox"} is 0 once the demo has stopped')
  const downSeen = Date.now() / 1000
  const [stamp] = await waitFor(`timestamp(${record})`, (r) => value(r) > downSeen, 20000)
  const at = Number(stamp?.value[1])
  t.ok(at > downSeen, `the record has been evaluated since (at ${at})`)
  const routeRate = value(await query(record, at))
  const direct = value(await query(`sum by (job, route) (rate(${sentSelector}[5m]))`, at))
  t.ok(Number.isFinite(routeRate) && routeRate === direct, `the record equals its expression at ${at} (record ${routeRate}, expression ${direct})`)
  // The job-wide record, from the same group and evaluation, is the same: no other route had traffic.
  const jobRate = value(await query('job:http_requests:rate5m{job="netbox"}', at))
  t.equal(jobRate, routeRate, 'job:http_requests:rate5m equals the route\'s')
})
