/**
 * The demo's landing page at `/`: what the demo is, links to `/metrics` and to the API routes,
 * and what to try. Static HTML, no script, no external resources.
 */

/** A link the page offers, with what it shows. */
interface Link { href: string, what: string }

/** The GET routes the page links to (every one answers 200 on a freshly seeded demo, except the 404 on purpose). */
export const LANDING_LINKS: readonly Link[] = Object.freeze([
  { href: '/metrics', what: 'the metrics, in Prometheus text format (your visit to this page is in http_requests_total{route="/"})' },
  { href: '/api/dcim/sites', what: 'sites, read through MikroORM\'s result cache (cache="orm-result")' },
  { href: '/api/dcim/racks', what: 'racks' },
  { href: '/api/dcim/devices', what: 'devices' },
  { href: '/api/dcim/devices?q=ams&limit=5', what: 'a search: counted under the route template /api/dcim/devices, never the raw URL' },
  { href: '/api/dcim/devices/1', what: 'one device: route="/api/dcim/devices/:id"' },
  { href: '/api/dcim/devices/by-name/ams1-r1-switch1', what: 'a lookup through an application cache (cache="device-lookups"): open it twice for a hit' },
  { href: '/api/dcim/interfaces', what: 'interfaces' },
  { href: '/api/status', what: 'counts and versions' },
  { href: '/api/status?delay=2000', what: 'a slow request: close the tab before it answers and it counts in http_requests_aborted_total' },
  { href: '/api/dcim/nothing-here', what: 'a 404: route="__unmatched__"' }
])

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** The landing page's HTML. */
export function landingPage (): string {
  const links = LANDING_LINKS.map((l) => `      <li><a href="${escape(l.href)}"><code>GET ${escape(l.href)}</code></a>: ${escape(l.what)}</li>`).join('\n')
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>fastify-netbox-metrics demo</title>
  <style>
    body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
    code, pre { font: 14px ui-monospace, monospace; background: #f3f3f3; padding: 0 .2em; }
    pre { padding: .6em; overflow-x: auto; }
    a { color: #0b5cad; }
  </style>
</head>
<body>
  <h1>fastify-netbox-metrics demo</h1>
  <p>A small NetBox-like DCIM API (sites, racks, devices, interfaces) on Fastify 5, MikroORM 6 and
  PostgreSQL, instrumented with <code>fastify-netbox-metrics</code>: the metrics NetBox gets from
  django-prometheus. Every request you make here is counted, timed and sized per route, with the
  ORM's inserts, updates and deletes, the SQL statements, transactions, pool and caches behind it.</p>

  <h2>Metrics</h2>
  <p><a href="/metrics"><strong>/metrics</strong></a>: what Prometheus scrapes. Reload it after
  using the API and watch the counters move.</p>

  <h2>The API</h2>
  <ul>
${links}
  </ul>

  <h2>What to try</h2>
  <pre>curl -s -X POST localhost:3000/api/dcim/devices -H 'content-type: application/json' \\
  -d '{"name":"my-device","rack":1}'     # 201, then 409 the second time (unique name)
curl -s localhost:3000/metrics | grep -E '^(http_requests_total|orm_entity_inserts_total|db_errors_total)'</pre>
  <p>(Use this page's port if it is not 3000.) Restart with <code>npm run demo -- --traffic</code>
  for a steady mix of requests that gives every family values. To graph them, point Prometheus
  at <code>/metrics</code>: <code>docs/getting-started.md</code> step 3, with the rules and the
  Grafana dashboard of <code>docs/prometheus/</code> and <code>docs/grafana/</code>.</p>
</body>
</html>
`
}
