/**
 * Reading start (created) timestamps from outside: the protobuf exposition decoded by protobufjs
 * (`created_timestamp` of every counter, histogram and summary series), and the OpenMetrics
 * `_created` samples read by Debian's python3-prometheus-client strict parser.
 */
import { spawnSync } from 'node:child_process'
import type { DecodedFamily } from './protobuf'

const PYTHON = process.env.FNM_PYTHON ?? '/usr/bin/python3'
const PARSER = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        if s.name.endswith('_created'):
            out.append([s.name, s.labels, s.value])
print(json.dumps(out))
`
const probe = spawnSync(PYTHON, ['-c', 'import prometheus_client.openmetrics.parser'], { encoding: 'utf8' })
/** false when the Python parser is there; else why the tests that need it are skipped. */
export const noParser: false | string = probe.status === 0 ? false : "Debian's python3-prometheus-client is not installed (apt-get install python3-prometheus-client); .ci/run installs it"

/** `_created` samples by `name{labels sorted}`, in milliseconds, as the Python parser read them. */
export function pythonCreated (body: string): Map<string, number> {
  const r = spawnSync(PYTHON, ['-c', PARSER], { input: body, encoding: 'utf8', timeout: 30000 })
  if (r.status !== 0) throw new Error(`the Python OpenMetrics parser rejected the exposition:\n${r.stderr}`)
  const out = new Map<string, number>()
  for (const [name, labels, value] of JSON.parse(r.stdout) as Array<[string, Record<string, string>, number]>) {
    if (!name.endsWith('_created')) continue
    out.set(`${name.slice(0, -'_created'.length)}{${Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',')}}`, Math.round(value * 1000))
  }
  return out
}

/** `created_timestamp` of every counter, histogram and summary series by `family{labels sorted}`, in milliseconds (undefined: none). */
export function protobufCreated (families: DecodedFamily[]): Map<string, number | undefined> {
  const out = new Map<string, number | undefined>()
  for (const f of families) {
    const field = f.type === 'COUNTER' || f.type === undefined ? 'counter' : f.type === 'HISTOGRAM' ? 'histogram' : f.type === 'SUMMARY' ? 'summary' : undefined
    if (field === undefined) continue
    for (const m of f.metric ?? []) {
      const labels = (m.label ?? []).map((l: any) => `${String(l.name)}="${String(l.value ?? '')}"`).sort().join(',')
      const ts = m[field]?.createdTimestamp
      const name = f.name.endsWith('_total') ? f.name.slice(0, -6) : f.name
      out.set(`${name}{${labels}}`, ts === undefined ? undefined : (ts.seconds ?? 0) * 1000 + Math.round((ts.nanos ?? 0) / 1e6))
    }
  }
  return out
}
