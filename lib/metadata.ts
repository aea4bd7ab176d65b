/**
 * Where the metadata families are set: `fastify_info` (always 1, with the versions of Fastify,
 * Node.js and this package as labels). `orm_info` is set by the ORM integration
 * (`hooks/orm/`), the migration gauges by `lib/migrations.ts`.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { MetricSet } from './metrics'

/** The package's name, as in its package.json. */
export const PACKAGE_NAME = 'fastify-netbox-metrics'

let pluginVersion: string | undefined

/**
 * This package's version, read once from its package.json (found by walking up from this file,
 * so it works from the sources and from `dist/`). `'unknown'` if it cannot be read.
 */
export function getPluginVersion (): string {
  if (pluginVersion !== undefined) return pluginVersion
  pluginVersion = 'unknown'
  let dir = __dirname
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown, version?: unknown }
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') {
        pluginVersion = pkg.version
        break
      }
    } catch {
      // not here; look one level up
    }
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  return pluginVersion
}

/**
 * Sets `fastify_info{fastify_version, node_version, plugin_version} 1`. The Node.js version is
 * `process.versions.node` (no leading `v`).
 */
export function registerFastifyInfo (metrics: MetricSet, fastifyVersion: string): void {
  metrics.get('fastifyInfo').child(String(fastifyVersion), process.versions.node, getPluginVersion()).set(1)
}
