/**
 * The operator's kit (docs/prometheus, docs/grafana) cannot drift from the code:
 * - promtool accepts the rule files, the scrape configs and every PromQL query of the dashboard,
 *   and the rule unit tests pass (skipped with a message when promtool is not installed; CI
 *   installs Debian's `prometheus` package, see .ci/run);
 * - every alert has a unit test in which it fires and one in which it does not;
 * - the rule test of the package's own alerts starts its series where a fresh app's endpoint
 *   does (every component and family at 0) and covers the first error and first dropped series;
 * - every metric name used in the dashboard and the rules is one the code registers (the
 *   CATALOGUE, prom-client's default metrics as a real registry names them, `up`, and in the
 *   rules the records of recording-rules.yml), and every CATALOGUE family is on the dashboard;
 * - docs/configuration.md documents every option of lib/options.ts, docs/README.md links every page.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { CATALOGUE, ERROR_COMPONENTS, NATIVE_FAMILIES, type FamilyKey } from '../lib/metrics'
import { samples } from './helpers/scrape'

const root = join(__dirname, '..')
const promDir = join(root, 'docs', 'prometheus')
const dashboardPath = join(root, 'docs', 'grafana', 'netbox-metrics.json')

interface Rule { record?: string, alert?: string, expr: string, labels?: Record<string, string> }
interface RuleFile { groups: Array<{ name: string, rules: Rule[] }> }

const recording = parseYaml(readFileSync(join(promDir, 'recording-rules.yml'), 'utf8')) as RuleFile
const alerting = parseYaml(readFileSync(join(promDir, 'alerting-rules.yml'), 'utf8')) as RuleFile
const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8'))

const recordingRules = recording.groups.flatMap((g) => g.rules)
const alertingRules = alerting.groups.flatMap((g) => g.rules)
const recordNames = new Set(recordingRules.map((r) => r.record as string))

const PROMTOOL = process.env.PROMTOOL ?? 'promtool'
const promtoolVersion = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' })
const havePromtool = promtoolVersion.status === 0
const noPromtool = havePromtool ? false : 'promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it and runs these checks'

function promtool (args: string[], cwd = promDir): { ok: boolean, output: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60000 })
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

// ---- metric names -------------------------------------------------------------------------

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count']

/**
 * Every series name the code can expose: the catalogue, histograms with their suffixes, and the
 * native histograms (`nativeHistograms`) under the family's own name.
 */
function catalogueNames (): Set<string> {
  const names = new Set<string>()
  for (const [key, f] of Object.entries(CATALOGUE)) {
    if (f.type === 'histogram') for (const s of HISTOGRAM_SUFFIXES) names.add(f.name + s)
    else names.add(f.name)
    if (NATIVE_FAMILIES.has(key as FamilyKey)) names.add(f.name)
  }
  return names
}

/** The names of prom-client's default metrics, asked of a real registry. */
async function defaultMetricNames (): Promise<Set<string>> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const names = new Set<string>()
  for (const m of await registry.getMetricsAsJSON()) {
    if (String(m.type) === 'histogram') for (const s of HISTOGRAM_SUFFIXES) names.add(m.name + s)
    else names.add(m.name)
  }
  registry.clear()
  return names
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan', 'atan2'])

/** The metric names a PromQL expression selects (function names, labels and keywords left out). */
function metricNames (expr: string): string[] {
  let e = expr
  e = e.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/'(?:[^'\\]|\\.)*'/g, "''").replace(/`[^`]*`/g, '``')
  e = e.replace(/\$\{[^}]*\}|\$\w+/g, ' ') // Grafana variables
  e = e.replace(/\{[^}]*\}/g, ' ') // label matchers
  e = e.replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const out: string[] = []
  for (const m of e.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const word = m[0]
    const after = e.slice((m.index ?? 0) + word.length).trimStart()
    if (after.startsWith('(')) continue // a function call
    if (PROMQL_WORDS.has(word.toLowerCase())) continue
    out.push(word)
  }
  return out
}

t.test('metricNames() reads PromQL', async (t) => {
  t.same(metricNames('sum by (le, route) (rate(http_request_duration_seconds_bucket{job=~"$job", le="0.5"}[$__rate_interval]))'), ['http_request_duration_seconds_bucket'])
  t.same(metricNames('a:b:rate5m > (14.4 * 0.01) and on (job) c_total offset 1d > bool 1e3'), ['a:b:rate5m', 'c_total'])
  t.same(metricNames('time() - max by (instance) (process_start_time_seconds{instance=~"${instance}"})'), ['process_start_time_seconds'])
  t.same(metricNames('sum(up) or vector(0)'), ['up'])
})

/** Every PromQL expression of the dashboard, with the panel it belongs to. */
function dashboardQueries (): Array<{ panel: string, expr: string }> {
  const out: Array<{ panel: string, expr: string }> = []
  const walk = (panels: any[]): void => {
    for (const p of panels ?? []) {
      for (const target of p.targets ?? []) if (typeof target.expr === 'string') out.push({ panel: p.title, expr: target.expr })
      walk(p.panels)
    }
  }
  walk(dashboard.panels)
  return out
}

t.test('every metric name in the kit is registered by the code', async (t) => {
  const registered = catalogueNames()
  const defaults = await defaultMetricNames()
  t.ok(defaults.has('process_cpu_seconds_total') && defaults.has('nodejs_eventloop_lag_p99_seconds'), 'prom-client default metric names were collected')
  const known = (name: string): boolean => registered.has(name) || name === 'up' ||
    (/^(process|nodejs)_/.test(name) && defaults.has(name))

  const queries = dashboardQueries()
  t.ok(queries.length > 20, `the dashboard has queries (${queries.length})`)
  const badDashboard = queries.flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !known(n)).map((n) => `${panel}: ${n}`))
  t.same(badDashboard, [], 'dashboard: only registered names (and no recording rule: it must work on the raw metrics)')

  const badRecording = recordingRules.flatMap((r) => metricNames(r.expr).filter((n) => !known(n) && !recordNames.has(n)).map((n) => `${r.record}: ${n}`))
  t.same(badRecording, [], 'recording rules: only registered names and records defined earlier')

  const badAlerting = alertingRules.flatMap((r) => metricNames(r.expr).filter((n) => !known(n) && !recordNames.has(n)).map((n) => `${r.alert}: ${n}`))
  t.same(badAlerting, [], 'alerting rules: only registered names and records of recording-rules.yml')

  // A record is named level:metric:operations; its metric part must start with a family's name
  // (without `_total`), so a renamed family shows up here too.
  const bases = Object.values(CATALOGUE).map((f) => f.name.replace(/_total$/, ''))
  const badRecordNames = recordingRules.map((r) => r.record as string).filter((name) => {
    const parts = name.split(':')
    return parts.length !== 3 || !bases.some((b) => parts[1] === b || parts[1].startsWith(b + '_'))
  })
  t.same(badRecordNames, [], 'record names follow level:metric:operations with a registered metric')
})

t.test('every catalogue family is on the dashboard', async (t) => {
  const used = new Set(dashboardQueries().flatMap(({ expr }) => metricNames(expr)))
  const missing = Object.values(CATALOGUE).filter((f) => {
    const names = f.type === 'histogram' ? HISTOGRAM_SUFFIXES.map((s) => f.name + s) : [f.name]
    return !names.some((n) => used.has(n))
  }).map((f) => f.name)
  t.same(missing, [], 'no family without a panel')
  for (const group of ['process_', 'nodejs_']) t.ok([...used].some((n) => n.startsWith(group)), `process health uses ${group}* metrics`)
})

t.test('the dashboard is an importable Grafana model with the datasource as a variable', async (t) => {
  t.type(dashboard.title, 'string')
  t.type(dashboard.uid, 'string')
  t.equal(dashboard.id, undefined, 'no instance-specific id')
  const dsVar = dashboard.templating.list.find((v: any) => v.name === 'datasource')
  t.match(dsVar, { type: 'datasource', query: 'prometheus' }, 'a datasource variable of type prometheus')
  const ids: number[] = []
  const datasources = new Set<string>()
  const walk = (panels: any[]): void => {
    for (const p of panels ?? []) {
      ids.push(p.id)
      if (p.type !== 'row') datasources.add(p.datasource?.uid)
      for (const target of p.targets ?? []) datasources.add(target.datasource?.uid)
      walk(p.panels)
    }
  }
  walk(dashboard.panels)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  t.same([...datasources], ['${datasource}'], 'every panel and query uses ${datasource}')
  for (const v of dashboard.templating.list.filter((v: any) => v.type === 'query')) {
    t.equal(v.datasource?.uid, '${datasource}', `variable ${v.name as string} uses \${datasource}`)
  }
})

// ---- alerts and their unit tests ----------------------------------------------------------

t.test('every alert is unit-tested firing and not firing', async (t) => {
  const tests = parseYaml(readFileSync(join(promDir, 'rules-test.yml'), 'utf8')) as {
    rule_files: string[]
    group_eval_order: string[]
    tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts?: unknown[] }> }>
  }
  t.same(tests.rule_files, ['recording-rules.yml', 'alerting-rules.yml'], 'the tests load both rule files')
  t.same([...tests.group_eval_order].sort(), [...recording.groups, ...alerting.groups].map((g) => g.name).sort(), 'group_eval_order lists every rule group')
  const cases = tests.tests.flatMap((g) => g.alert_rule_test ?? [])
  const alertNames = alertingRules.map((r) => r.alert as string)
  t.ok(alertNames.length >= 7, `alerting rules found (${alertNames.length})`)
  for (const name of alertNames) {
    const mine = cases.filter((c) => c.alertname === name)
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${name} has a test where it fires`)
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${name} has a test where it does not fire`)
  }
  const unknown = cases.map((c) => c.alertname).filter((n) => !alertNames.includes(n))
  t.same(unknown, [], 'no test of an alert that does not exist')
  // The alerts the issue asks for, by what they watch.
  const exprs = alertingRules.map((r) => r.expr).join('\n')
  for (const [what, needle] of [['target down', 'up{'], ['5xx ratio', 'http_requests_5xx'], ['latency SLO burn', 'slow_ratio'], ['DB error rate', 'db_errors'], ['pool saturation', 'db_pool_connections'], ['pending migrations', 'db_migrations_pending'], ['cache hit ratio drop', 'cache_get_hits']]) {
    t.ok(exprs.includes(needle), `an alert watches ${what}`)
  }
})

t.test('the package health rule test starts the way the endpoint does', async (t) => {
  interface RuleTest { name: string, input_series: Array<{ series: string, values: string }>, alert_rule_test?: Array<{ alertname: string, exp_alerts?: unknown[] }> }
  const tests = (parseYaml(readFileSync(join(promDir, 'rules-test.yml'), 'utf8')) as { tests: RuleTest[] }).tests
  const health = tests.find((c) => c.name === 'package health')
  if (health === undefined) throw new Error('rules-test.yml has no "package health" test')
  // A freshly started app, scraped before anything happened.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  const exposed = samples((await app.inject('/metrics')).body)
  const selfSeries = health.input_series.filter((s) => /^metrics_(errors|series_dropped)_total\{/.test(s.series))
  const components = new Set<string>()
  for (const { series, values } of selfSeries) {
    // The series as the endpoint writes it: without the target labels Prometheus adds.
    const name = series.slice(0, series.indexOf('{'))
    const labels = [...series.matchAll(/(\w+)="([^"]*)"/g)].filter((m) => m[1] !== 'job' && m[1] !== 'instance')
    const key = `${name}{${labels.map((m) => `${m[1]}="${m[2]}"`).join(',')}}`
    if (name === 'metrics_errors_total') components.add(labels[0][2])
    t.equal(Number(/^-?[\d.]+/.exec(values)?.[0]), exposed.get(key), `${key} starts at the endpoint's value ${String(exposed.get(key))}`)
  }
  t.same([...components].sort(), [...ERROR_COMPONENTS].sort(), 'every component the endpoint exposes is in the test')
  // The first event of each: a series going from 0 up, and the alert firing for it.
  const fires = (alert: string): boolean => (health.alert_rule_test ?? []).some((c) => c.alertname === alert && (c.exp_alerts ?? []).length > 0)
  for (const [metric, alert] of [['metrics_errors_total', 'NetboxMetricsInternalErrors'], ['metrics_series_dropped_total', 'NetboxMetricsSeriesDropped']]) {
    t.ok(selfSeries.some((s) => s.series.startsWith(`${metric}{`) && /^0x\d+ [1-9]/.test(s.values)), `${metric}: a series goes from 0 to its first event`)
    t.ok(fires(alert), `${alert} fires on the first event`)
  }
})

t.test('promtool check rules', { skip: noPromtool }, async (t) => {
  for (const file of ['recording-rules.yml', 'alerting-rules.yml']) {
    const r = promtool(['check', 'rules', file])
    t.ok(r.ok, `promtool check rules ${file}`, { diagnostic: !r.ok, output: r.output })
  }
})

t.test('promtool test rules', { skip: noPromtool }, async (t) => {
  const r = promtool(['test', 'rules', 'rules-test.yml'])
  t.ok(r.ok, 'promtool test rules rules-test.yml', { diagnostic: !r.ok, output: r.output })
  t.match(r.output, /SUCCESS/)
})

t.test('promtool check config: the example scrape configurations', { skip: noPromtool }, async (t) => {
  const configs = readdirSync(promDir).filter((f) => /^prometheus.*\.yml$/.test(f))
  t.ok(configs.length >= 3, `single process, several processes, several hosts (${configs.join(', ')})`)
  for (const file of configs) {
    const r = promtool(['check', 'config', file])
    t.ok(r.ok, `promtool check config ${file}`, { diagnostic: !r.ok, output: r.output })
  }
})

t.test('promtool accepts every query of the dashboard', { skip: noPromtool }, async (t) => {
  // Grafana's variables replaced by what they expand to, each query checked as a recording rule.
  const expand = (expr: string): string => expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{?(job|instance|route)\}?/g, '.*')
  const queries = dashboardQueries()
  const rules = { groups: [{ name: 'dashboard', rules: queries.map(({ expr }, i) => ({ record: `dashboard:query:${i}`, expr: expand(expr) })) }] }
  const dir = mkdtempSync(join(tmpdir(), 'fnm-kit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'dashboard-queries.yml'), stringifyYaml(rules))
  const r = promtool(['check', 'rules', 'dashboard-queries.yml'], dir)
  t.ok(r.ok, `promtool parses the ${queries.length} queries`, { diagnostic: !r.ok, output: r.output })
})

// ---- the docs -----------------------------------------------------------------------------

t.test('docs/configuration.md documents every option of lib/options.ts', async (t) => {
  const source = readFileSync(join(root, 'lib', 'options.ts'), 'utf8')
  const body = /export interface NetboxMetricsOptions \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? ''
  const options = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1])
  t.ok(options.length >= 9, `options read from the NetboxMetricsOptions interface (${options.join(', ')})`)
  const doc = readFileSync(join(root, 'docs', 'configuration.md'), 'utf8')
  const headings = new Set([...doc.matchAll(/^#{2,4} `([\w.]+)`/gm)].map((m) => m[1]))
  for (const o of options) t.ok(headings.has(o), `configuration.md has a section for \`${o}\``)
})

t.test('docs/README.md links every page', async (t) => {
  const docs = join(root, 'docs')
  const index = readFileSync(join(docs, 'README.md'), 'utf8')
  const links = new Set([...index.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]))
  for (const page of readdirSync(docs).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
    t.ok(links.has(page), `the index links ${page}`)
  }
  for (const kit of ['grafana/netbox-metrics.json', 'prometheus/recording-rules.yml', 'prometheus/alerting-rules.yml', 'prometheus/prometheus.yml']) {
    t.ok(links.has(kit), `the index links ${kit}`)
  }
  for (const link of links) {
    if (/^[a-z]+:/.test(link)) continue
    t.ok(existsSync(join(docs, link)), `${link} exists`)
  }
})

t.test('docs/migrating-from-django-prometheus.md maps every django-prometheus metric to a real one', async (t) => {
  // The 34 metrics django-prometheus 2.4/2.5 registers, by exposed name.
  const django = [
    'django_http_requests_before_middlewares_total', 'django_http_responses_before_middlewares_total',
    'django_http_requests_latency_including_middlewares_seconds', 'django_http_requests_unknown_latency_including_middlewares_total',
    'django_http_requests_total_by_method_total', 'django_http_requests_total_by_transport_total', 'django_http_ajax_requests_total',
    'django_http_requests_body_total_bytes', 'django_http_requests_total_by_view_transport_method_total',
    'django_http_responses_total_by_templatename_total', 'django_http_responses_total_by_status_total',
    'django_http_responses_total_by_status_view_method_total', 'django_http_responses_total_by_charset_total',
    'django_http_responses_streaming_total', 'django_http_responses_body_total_bytes', 'django_http_requests_latency_seconds_by_view_method',
    'django_http_requests_unknown_latency_total', 'django_http_exceptions_total_by_type_total', 'django_http_exceptions_total_by_view_total',
    'django_model_inserts_total', 'django_model_updates_total', 'django_model_deletes_total',
    'django_db_new_connections_total', 'django_db_new_connection_errors_total', 'django_db_execute_total', 'django_db_execute_many_total',
    'django_db_errors_total', 'django_db_query_duration_seconds',
    'django_cache_get_total', 'django_cache_get_hits_total', 'django_cache_get_misses_total', 'django_cache_get_fail_total',
    'django_migrations_unapplied_total', 'django_migrations_applied_total'
  ]
  t.equal(django.length, 34)
  const doc = readFileSync(join(root, 'docs', 'migrating-from-django-prometheus.md'), 'utf8')
  // Rows: | n | `django_name` | ours | notes |
  const rows = new Map([...doc.matchAll(/^\| (\d+) \| `(django_\w+)` \| ([^|]*(?:\\\|[^|]*)*) \|/gm)].map((m) => [m[2], m[3].trim()]))
  t.same([...rows.keys()].sort(), [...django].sort(), 'one numbered row per django-prometheus metric')
  const registered = catalogueNames()
  for (const [name, ours] of rows) {
    if (ours === 'no equivalent') continue
    const used = [...ours.matchAll(/`([^`]+)`/g)].flatMap((m) => metricNames(m[1]))
    t.ok(used.length > 0 && used.every((n) => registered.has(n) || registered.has(n + '_bucket')), `${name} -> ${used.join(', ')}`)
  }
})
