/** Test helpers: scrape an app and read exact sample values from the exposition. */
import type { FastifyInstance } from 'fastify'
import { execFileSync } from 'node:child_process'

/** The exposition body of `GET /metrics` (or another endpoint). */
export async function scrape (app: FastifyInstance, url = '/metrics', headers: Record<string, string> = {}): Promise<string> {
  const res = await app.inject({ url, headers })
  if (res.statusCode !== 200) throw new Error(`scrape ${url} answered ${res.statusCode}: ${res.body}`)
  return res.body
}

/** Every sample line as `series -> value`, where series is the text before the value. */
export function samples (body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** The value of one series (`name{labels}` exactly as exposed), or undefined when absent. */
export function value (body: string, series: string): number | undefined {
  return samples(body).get(series)
}

/** Sum of every sample of a metric name (all label sets). */
export function sum (body: string, name: string): number {
  let total = 0
  for (const [series, v] of samples(body)) {
    if (series === name || series.startsWith(`${name}{`)) total += v
  }
  return total
}

/** Sample lines of one metric name, sorted, for exact comparison. */
export function lines (body: string, name: string): string[] {
  return body.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).sort()
}

/** Whether Debian's promtool is on this machine. */
export function hasPromtool (): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Runs `promtool check metrics` on an exposition. Returns promtool's complaints (empty when it
 * is clean). Lint findings about prom-client's own default metrics are not ours and are dropped.
 */
export function promtoolCheck (body: string): string[] {
  try {
    execFileSync('promtool', ['check', 'metrics'], { input: body, stdio: ['pipe', 'pipe', 'pipe'] })
    return []
  } catch (err) {
    const e = err as { status?: number, stdout?: Buffer, stderr?: Buffer }
    const text = `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`
    const problems = text.split('\n').filter((l) => l.trim() !== '' && !/^nodejs_active_(handles|requests|resources)_total /.test(l))
    if (e.status === 3 && problems.length === 0) return []
    return problems.length > 0 ? problems : [`promtool exited ${e.status}`]
  }
}
