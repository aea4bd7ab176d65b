/**
 * docs/deployment.md's manifests, parsed as written: every field of the ServiceMonitor and
 * PodMonitor is one the Prometheus Operator's CRDs define (the field lists below are copied from
 * the CRD schemas: prometheus-operator's example/prometheus-operator-crd/
 * monitoring.coreos.com_{servicemonitors,podmonitors}.yaml, v0.84, as generated into
 * @kubernetes-models/prometheus-operator 6.0.0), the required ones are there, and the objects fit
 * together (selectors match labels, named ports exist, METRICS_PORT is the port scraped,
 * METRICS_HOST is 0.0.0.0, the multiprocess directory is a mounted volume). The job name of every
 * scrape configuration in the docs (and the Operator's jobLabel) is the one the alerting rules
 * match, so copying an example never silences the alerts. promtool checks the scrape configs when
 * it is installed.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { codeBlocks } from './helpers/markdown'

const root = join(__dirname, '..')
const page = readFileSync(join(root, 'docs', 'deployment.md'), 'utf8')

// ---- the CRDs' fields -----------------------------------------------------------------------

const SERVICE_MONITOR_SPEC = ['attachMetadata', 'bodySizeLimit', 'convertClassicHistogramsToNHCB', 'endpoints', 'fallbackScrapeProtocol', 'jobLabel', 'keepDroppedTargets', 'labelLimit', 'labelNameLengthLimit', 'labelValueLengthLimit', 'namespaceSelector', 'nativeHistogramBucketLimit', 'nativeHistogramMinBucketFactor', 'podTargetLabels', 'sampleLimit', 'scrapeClass', 'scrapeClassicHistograms', 'scrapeNativeHistograms', 'scrapeProtocols', 'selector', 'selectorMechanism', 'serviceDiscoveryRole', 'targetLabels', 'targetLimit']
const SERVICE_MONITOR_REQUIRED = ['selector', 'endpoints']
const ENDPOINT = ['authorization', 'basicAuth', 'bearerTokenFile', 'bearerTokenSecret', 'enableHttp2', 'filterRunning', 'followRedirects', 'honorLabels', 'honorTimestamps', 'interval', 'metricRelabelings', 'noProxy', 'oauth2', 'params', 'path', 'port', 'proxyConnectHeader', 'proxyFromEnvironment', 'proxyUrl', 'relabelings', 'scheme', 'scrapeTimeout', 'targetPort', 'tlsConfig', 'trackTimestampsStaleness']
const POD_MONITOR_SPEC = ['attachMetadata', 'bodySizeLimit', 'convertClassicHistogramsToNHCB', 'fallbackScrapeProtocol', 'jobLabel', 'keepDroppedTargets', 'labelLimit', 'labelNameLengthLimit', 'labelValueLengthLimit', 'namespaceSelector', 'nativeHistogramBucketLimit', 'nativeHistogramMinBucketFactor', 'podMetricsEndpoints', 'podTargetLabels', 'sampleLimit', 'scrapeClass', 'scrapeClassicHistograms', 'scrapeNativeHistograms', 'scrapeProtocols', 'selector', 'selectorMechanism', 'targetLimit']
const POD_MONITOR_REQUIRED = ['selector']
const POD_METRICS_ENDPOINT = ['authorization', 'basicAuth', 'bearerTokenSecret', 'enableHttp2', 'filterRunning', 'followRedirects', 'honorLabels', 'honorTimestamps', 'interval', 'metricRelabelings', 'noProxy', 'oauth2', 'params', 'path', 'port', 'portNumber', 'proxyConnectHeader', 'proxyFromEnvironment', 'proxyUrl', 'relabelings', 'scheme', 'scrapeTimeout', 'targetPort', 'tlsConfig', 'trackTimestampsStaleness']
const LABEL_SELECTOR = ['matchExpressions', 'matchLabels']
const SAFE_AUTHORIZATION = ['credentials', 'type']
const SECRET_KEY_SELECTOR = ['key', 'name', 'optional']
const OBJECT = ['apiVersion', 'kind', 'metadata', 'spec']
const DURATION = /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

function only (t: Tap.Test, value: Obj, allowed: string[], where: string): void {
  t.same(Object.keys(value).filter((k) => !allowed.includes(k)), [], `${where}: only fields the CRD defines`)
}

/** A ServiceMonitor's or PodMonitor's object, spec and selector fields, and its required ones. */
function monitor (t: Tap.Test, object: Obj, specFields: string[], required: string[]): void {
  only(t, object, OBJECT, object.kind)
  t.equal(object.apiVersion, 'monitoring.coreos.com/v1')
  only(t, object.spec, specFields, 'spec')
  for (const r of required) t.ok(object.spec[r] !== undefined, `spec.${r} (required)`)
  only(t, object.spec.selector, LABEL_SELECTOR, 'spec.selector')
}

/** The `selector` entries that `labels` do not match (none: it selects them). */
function unmatched (selector: Obj, labels: Obj): Array<[string, unknown]> {
  return Object.entries(selector).filter(([k, v]) => labels[k] !== v)
}

// ---- the page's blocks ----------------------------------------------------------------------

const yamlDocs: Obj[] = codeBlocks(page).filter((b) => b.lang === 'yaml').flatMap((b) => parseAllDocuments(b.code).map((d) => {
  if (d.errors.length > 0) throw new Error(`docs/deployment.md: ${d.errors[0].message}`)
  return d.toJS() as Obj
}))
const ofKind = (kind: string): Obj[] => yamlDocs.filter((d) => d.kind === kind)
const deployments = ofKind('Deployment')
const [service] = ofKind('Service')
const [serviceMonitor] = ofKind('ServiceMonitor')
const [podMonitor] = ofKind('PodMonitor')
const scrapeConfig = yamlDocs.find((d) => d.scrape_configs !== undefined) as Obj
const authSnippet = yamlDocs.find((d) => d.kind === undefined && d.authorization !== undefined) as Obj

/** The job name the alerting rules match. */
const alertJobs = [...new Set([...readFileSync(join(root, 'docs', 'prometheus', 'alerting-rules.yml'), 'utf8').matchAll(/job="([^"]+)"/g)].map((m) => m[1]))]

t.test('the page has every manifest', async (t) => {
  t.same(yamlDocs.map((d) => d.kind ?? (d.scrape_configs !== undefined ? 'scrape_configs' : Object.keys(d).join())),
    // the two scrape_configs after `authorization`: the Prometheus 3.8+ and 2.50+ settings for what the package serves
    ['Deployment', 'scrape_configs', 'Service', 'ServiceMonitor', 'PodMonitor', 'authorization', 'scrape_configs', 'scrape_configs', 'Deployment'])
  t.same(alertJobs, ['netbox'], 'the alerting rules match one job name')
})

t.test('ServiceMonitor', async (t) => {
  monitor(t, serviceMonitor, SERVICE_MONITOR_SPEC, SERVICE_MONITOR_REQUIRED)
  for (const e of serviceMonitor.spec.endpoints as Obj[]) {
    only(t, e, ENDPOINT, 'spec.endpoints[]')
    t.ok(DURATION.test(e.interval) && DURATION.test(e.scrapeTimeout), 'interval and scrapeTimeout are durations')
    t.ok((service.spec.ports as Obj[]).some((p) => p.name === e.port), `port "${e.port}" is a named port of the Service`)
    t.equal(e.path, '/metrics')
  }
  t.same(unmatched(serviceMonitor.spec.selector.matchLabels, service.metadata.labels), [], 'the selector matches the Service')
  t.equal(service.metadata.labels[serviceMonitor.spec.jobLabel], alertJobs[0], 'jobLabel gives the job name the alerts match')
  // The Service's target ports are named container ports of the Deployment.
  const names = (deployments[0].spec.template.spec.containers[0].ports as Obj[]).map((p) => p.name)
  for (const p of service.spec.ports as Obj[]) t.ok(names.includes(p.targetPort), `targetPort ${String(p.targetPort)} is a container port`)
  t.same(unmatched(service.spec.selector, deployments[0].spec.template.metadata.labels), [], 'the Service selects the pods')

  only(t, authSnippet, ENDPOINT, 'the authorization snippet')
  only(t, authSnippet.authorization, SAFE_AUTHORIZATION, 'authorization')
  only(t, authSnippet.authorization.credentials, SECRET_KEY_SELECTOR, 'authorization.credentials')
})

t.test('PodMonitor', async (t) => {
  monitor(t, podMonitor, POD_MONITOR_SPEC, POD_MONITOR_REQUIRED)
  for (const d of deployments) {
    const pod = d.spec.template
    t.same(unmatched(podMonitor.spec.selector.matchLabels, pod.metadata.labels), [], `the selector matches the pods of ${d.metadata.name as string}`)
    t.equal(pod.metadata.labels[podMonitor.spec.jobLabel], alertJobs[0], 'jobLabel gives the job name the alerts match')
    for (const e of podMonitor.spec.podMetricsEndpoints as Obj[]) {
      only(t, e, POD_METRICS_ENDPOINT, 'spec.podMetricsEndpoints[]')
      t.ok((pod.spec.containers[0].ports as Obj[]).some((p) => p.name === e.port), `port "${e.port}" is a named container port`)
    }
  }
})

t.test('Deployments: METRICS_PORT is the port scraped, on 0.0.0.0', async (t) => {
  for (const d of deployments) {
    const pod = d.spec.template
    t.same(unmatched(d.spec.selector.matchLabels, pod.metadata.labels), [], 'the selector matches the template')
    const container = pod.spec.containers[0]
    const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name, e.value]))
    t.equal(env.METRICS_ENABLED, 'true')
    t.equal(env.METRICS_HOST, '0.0.0.0', 'the separate listener binds beyond the container\'s loopback')
    const metricsPort = (container.ports as Obj[]).find((p) => p.name === 'metrics')
    t.equal(String(metricsPort?.containerPort), env.METRICS_PORT, 'the metrics container port is METRICS_PORT')
    const annotations = pod.metadata.annotations as Obj | undefined
    if (annotations !== undefined) {
      t.equal(annotations['prometheus.io/port'], env.METRICS_PORT, 'the annotated port is METRICS_PORT')
      t.equal(annotations['prometheus.io/path'], '/metrics')
    }
    if (env.PROMETHEUS_MULTIPROC_DIR !== undefined) {
      const mount = (container.volumeMounts as Obj[]).find((m) => m.mountPath === env.PROMETHEUS_MULTIPROC_DIR)
      t.ok(mount, 'PROMETHEUS_MULTIPROC_DIR is a mounted volume')
      t.ok((pod.spec.volumes as Obj[]).find((v) => v.name === mount?.name)?.emptyDir, 'an emptyDir, fresh for each pod')
    }
  }
})

t.test('the Dockerfile', async (t) => {
  const dockerfile = codeBlocks(page).find((b) => b.lang === 'dockerfile')?.code ?? ''
  const env = Object.fromEntries([...dockerfile.matchAll(/(METRICS_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]))
  t.same(env, { METRICS_ENABLED: 'true', METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' })
  t.match(dockerfile, new RegExp(`^EXPOSE .*\\b${env.METRICS_PORT}\\b`, 'm'), 'exposes METRICS_PORT')
  t.match(dockerfile, /^USER node$/m, 'runs unprivileged')
})

t.test('the pod-annotation scrape job', async (t) => {
  const relabel = scrapeConfig.scrape_configs[0].relabel_configs as Obj[]
  const address = relabel.find((r) => r.target_label === '__address__') as Obj
  // Prometheus anchors relabelling regexes; the same rewrite in JavaScript:
  const rewrite = (value: string): string | undefined => {
    const m = new RegExp(`^(?:${address.regex as string})$`).exec(value)
    return m === null ? undefined : (address.replacement as string).replace(/\$(\d)/g, (_s, i: string) => m[Number(i)])
  }
  t.equal(rewrite('10.1.2.3:3000;9464'), '10.1.2.3:9464', 'the address gets the annotated port')
  t.equal(rewrite('10.1.2.3;9464'), '10.1.2.3:9464', 'also without a port')
})

t.test('every scrape config in the docs uses the job name the alerts match', async (t) => {
  const docs = join(root, 'docs')
  const jobs: Array<[string, string]> = []
  for (const f of readdirSync(docs).filter((f) => f.endsWith('.md'))) {
    for (const b of codeBlocks(readFileSync(join(docs, f), 'utf8')).filter((b) => b.lang === 'yaml' && b.code.includes('scrape_configs'))) {
      for (const c of (parseYaml(b.code) as Obj).scrape_configs as Obj[]) jobs.push([f, c.job_name])
    }
  }
  for (const f of readdirSync(join(docs, 'prometheus')).filter((f) => /^prometheus.*\.yml$/.test(f))) {
    for (const c of (parseYaml(readFileSync(join(docs, 'prometheus', f), 'utf8')) as Obj).scrape_configs as Obj[]) jobs.push([`prometheus/${f}`, c.job_name])
  }
  t.ok(jobs.length >= 5, `${jobs.length} scrape configs`)
  t.same(jobs.filter(([, job]) => job !== alertJobs[0]), [], `every job_name is "${alertJobs[0]}"`)
})

/** promtool's verdict on the pod-annotation scrape config, or why it cannot give one. */
function promtoolCheck (): { skip: string | false, output: string, status: number | null } {
  const promtool = process.env.PROMTOOL ?? 'promtool'
  if (spawnSync(promtool, ['--version']).status !== 0) return { skip: 'promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it', output: '', status: null }
  const dir = mkdtempSync(join(tmpdir(), 'fnm-deploy-'))
  try {
    writeFileSync(join(dir, 'prometheus.yml'), scrapeBlock)
    const r = spawnSync(promtool, ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' })
    const output = `${r.stdout}${r.stderr}`
    // Debian builds Prometheus without Kubernetes service discovery: its promtool cannot check this.
    const skip = /field kubernetes_sd_configs not found/.test(output) ? 'this promtool is built without Kubernetes service discovery (Debian\'s is); an upstream promtool checks it' : false
    return { skip, output, status: r.status }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const scrapeBlock = codeBlocks(page).filter((b) => b.lang === 'yaml' && b.code.includes('scrape_configs'))[0].code
const checked = promtoolCheck()
t.test('promtool accepts the pod-annotation scrape config', { skip: checked.skip }, async (t) => {
  t.equal(checked.status, 0, checked.output)
})
