/**
 * A traffic generator for the demo: a steady, modest mix of requests against the demo API so that
 * every HTTP, ORM, database and cache family on /metrics gets values. It covers every route,
 * successful reads and writes, 404s (unknown objects and unmatched URLs), validation 400s, the
 * unique-constraint 409, a foreign-key 409, bulk imports, upserts, orphan removal, and client
 * aborts (a slow request whose socket the client closes before the answer).
 *
 * Objects the traffic creates are named `traffic-…` and deleted again, so the database stays small.
 */
import http from 'node:http'

/** Options of `startTraffic`. */
export interface TrafficOptions {
  /** Requests started per second (default 20). */
  rate?: number
  /** Most requests in flight at once (default 8). */
  concurrency?: number
  /** Called every `summaryEveryMs` with a one-line summary (default: no summary). */
  onSummary?: (line: string) => void
  summaryEveryMs?: number
}

/** A running traffic generator. */
export interface Traffic {
  /** Stops starting requests and waits (at most `timeoutMs`) for those in flight. */
  stop: (timeoutMs?: number) => Promise<void>
  /** Counts so far, by outcome: `2xx`, `4xx`, `5xx`, `aborted`, `failed` (network errors). */
  readonly counts: Record<string, number>
}

interface Result { status: number, body: any }

const STATUSES = ['active', 'planned', 'offline', 'failed']

/** Starts driving traffic at `baseUrl` (for example `http://127.0.0.1:3000`). */
export function startTraffic (baseUrl: string, opts: TrafficOptions = {}): Traffic {
  const rate = opts.rate ?? 20
  const concurrency = opts.concurrency ?? 8
  const url = new URL(baseUrl)
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency + 2 })
  const counts: Record<string, number> = { '2xx': 0, '4xx': 0, '5xx': 0, aborted: 0, failed: 0 }
  const inFlight = new Set<Promise<unknown>>()
  let stopped = false
  let seq = 0

  // What the traffic knows about the database, refreshed now and then.
  let siteIds: number[] = []
  let rackIds: number[] = []
  let deviceIds: number[] = []
  let deviceNames: string[] = []
  let interfaceIds: number[] = []
  const ownDevices: number[] = [] // created by the traffic, deleted again later
  const ownRacks: number[] = []
  const prefix = `traffic-${process.pid.toString(36)}-${Date.now().toString(36)}`

  function request (method: string, path: string, body?: unknown, abortAfterMs?: number): Promise<Result> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
      const req = http.request({
        host: url.hostname,
        port: url.port,
        method,
        path,
        // A request that will be aborted gets its own connection, so its socket can be closed.
        agent: abortAfterMs === undefined ? agent : false,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length }
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const status = res.statusCode ?? 0
          counts[status >= 500 ? '5xx' : status >= 400 ? '4xx' : '2xx']++
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown = text
          try { parsed = text === '' ? undefined : JSON.parse(text) } catch { /* not JSON */ }
          resolve({ status, body: parsed })
        })
        res.on('error', reject)
      })
      req.on('error', (err) => {
        if (abortAfterMs !== undefined) {
          counts.aborted++
          resolve({ status: 0, body: undefined })
        } else {
          counts.failed++
          reject(err)
        }
      })
      if (abortAfterMs !== undefined) setTimeout(() => req.destroy(new Error('client abort')), abortAfterMs).unref()
      req.end(payload)
    })
  }

  const pick = <T>(xs: T[]): T | undefined => xs.length === 0 ? undefined : xs[Math.floor(Math.random() * xs.length)]

  async function refresh (): Promise<void> {
    const [sites, racks, devices, interfaces] = await Promise.all([
      request('GET', '/api/dcim/sites?limit=100'),
      request('GET', '/api/dcim/racks?limit=100'),
      request('GET', '/api/dcim/devices?limit=200'),
      request('GET', '/api/dcim/interfaces?limit=200')
    ])
    const ids = (r: Result): number[] => r.status === 200 && Array.isArray(r.body?.results) ? r.body.results.map((o: { id: number }) => o.id) : []
    siteIds = ids(sites)
    rackIds = ids(racks)
    deviceIds = ids(devices)
    interfaceIds = ids(interfaces)
    deviceNames = devices.status === 200 ? devices.body.results.map((d: { name: string }) => d.name) : []
  }

  // The mix: [weight, action]. Every route of the API appears at least once.
  const actions: Array<[number, () => Promise<unknown>]> = [
    [3, async () => await request('GET', '/api/dcim/sites')], // ORM result cache
    [1, async () => await request('GET', `/api/dcim/sites/${pick(siteIds) ?? 1}`)],
    [1, async () => await request('GET', '/api/dcim/racks?limit=10')],
    [1, async () => await request('GET', `/api/dcim/racks/${pick(rackIds) ?? 1}`)],
    [3, async () => {
      const name = pick(deviceNames) ?? 'ams1'
      const start = Math.floor(Math.random() * Math.max(1, name.length - 3))
      return await request('GET', `/api/dcim/devices?q=${encodeURIComponent(name.slice(start, start + 3))}&limit=20`)
    }],
    [1, async () => await request('GET', `/api/dcim/devices?status=${pick(STATUSES) ?? 'active'}`)],
    [2, async () => await request('GET', `/api/dcim/devices/${pick(deviceIds) ?? 1}`)],
    [3, async () => await request('GET', `/api/dcim/devices/by-name/${encodeURIComponent(Math.random() < 0.9 ? (pick(deviceNames) ?? 'x') : `${prefix}-missing`)}`)], // app cache
    [1, async () => await request('GET', '/api/dcim/interfaces?limit=20')],
    [1, async () => await request('GET', `/api/dcim/interfaces/${pick(interfaceIds) ?? 1}`)],
    [1, async () => await request('GET', '/api/status')],
    // Writes
    [2, async () => {
      const rack = pick(rackIds)
      if (rack === undefined) return
      const r = await request('POST', '/api/dcim/devices', { name: `${prefix}-${++seq}`, rack, role: 'server', status: pick(STATUSES) })
      if (r.status === 201) ownDevices.push(r.body.id)
    }],
    [1, async () => {
      const rack = pick(rackIds)
      if (rack === undefined) return
      const rows = Array.from({ length: 2 + Math.floor(Math.random() * 4) }, () => ({ name: `${prefix}-${++seq}`, rack, serial: `B${seq}` }))
      const r = await request('POST', '/api/dcim/devices/bulk', rows)
      if (r.status === 201) ownDevices.push(...(r.body.ids as number[]))
    }],
    [1, async () => {
      const id = pick(ownDevices)
      if (id === undefined) return
      await request('PATCH', `/api/dcim/devices/${id}`, { status: pick(STATUSES) })
    }],
    [1, async () => {
      const id = pick(ownDevices)
      if (id === undefined) return
      // Adds, keeps and drops interfaces: the dropped ones are orphan-removed.
      const ifaces = ['eth0', 'eth1', 'eth2', 'eth3', 'mgmt0'].filter(() => Math.random() < 0.5).map((name) => ({ name, mtu: 1500 }))
      await request('PUT', `/api/dcim/devices/${id}/interfaces`, ifaces)
    }],
    [1, async () => {
      const device = pick(ownDevices)
      if (device === undefined) return
      await request('POST', '/api/dcim/interfaces', { name: `${prefix}-if${++seq}`, device, type: '10gbase-t' })
    }],
    [2, async () => {
      // Keep the traffic's own devices few: delete the oldest ones (with their interfaces).
      if (ownDevices.length < 10) return
      const id = ownDevices.shift() as number
      await request('DELETE', `/api/dcim/devices/${id}`)
    }],
    [1, async () => {
      // An upsert by slug; par4 does not exist until the first one creates it.
      const [slug, name] = pick([['ams1', 'Amsterdam DC1'], ['fra2', 'Frankfurt DC2'], ['lon3', 'London DC3'], ['par4', 'Paris DC4']]) as string[]
      return await request('PUT', `/api/dcim/sites/by-slug/${slug}`, { name, description: `upserted at ${new Date().toISOString()}` })
    }],
    [0.5, async () => {
      const site = pick(siteIds)
      if (site === undefined) return
      const r = await request('POST', '/api/dcim/racks', { name: `${prefix}-rack${++seq}`, site })
      if (r.status === 201) ownRacks.push(r.body.id)
      if (ownRacks.length > 3) await request('DELETE', `/api/dcim/racks/${ownRacks.shift() as number}`)
    }],
    // Failures
    [1, async () => await request('POST', '/api/dcim/devices', { name: pick(deviceNames) ?? 'ams1-r1-switch1', rack: pick(rackIds) ?? 1 })], // 409 unique
    [0.3, async () => await request('DELETE', `/api/dcim/sites/${pick(siteIds) ?? 1}`)], // 409 FK (the site has racks)
    [1, async () => await request('GET', `/api/dcim/devices/${900000 + Math.floor(Math.random() * 1000)}`)], // 404 from the handler
    [1, async () => await request('GET', pick(['/api/dcim/cables', '/api/ipam/prefixes', '/favicon.ico']) ?? '/nope')], // 404 unmatched
    [1, async () => await request('POST', '/api/dcim/devices', { rack: 'not-a-number' })], // 400 validation
    [0.5, async () => await request('GET', '/api/dcim/devices/abc')], // 400 params validation
    [0.5, async () => await request('GET', '/api/status?delay=400', undefined, 40)] // client abort
  ]
  const totalWeight = actions.reduce((s, [w]) => s + w, 0)

  function next (): () => Promise<unknown> {
    let r = Math.random() * totalWeight
    for (const [w, a] of actions) {
      r -= w
      if (r <= 0) return a
    }
    return actions[0][1]
  }

  function launch (action: () => Promise<unknown>): void {
    const p = action().catch(() => { /* counted as failed; the server may be shutting down */ })
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }

  launch(refresh)
  let ticks = 0
  const interval = setInterval(() => {
    if (stopped) return
    if (++ticks % (rate * 5) === 0) launch(refresh)
    if (inFlight.size >= concurrency) return
    launch(next())
  }, 1000 / rate)

  const summarize = (): string => `traffic: ${Object.values(counts).reduce((a, b) => a + b, 0)} requests (` +
    Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') + ')'
  const summary = opts.onSummary === undefined
    ? undefined
    : setInterval(() => opts.onSummary?.(summarize()), opts.summaryEveryMs ?? 10000)
  summary?.unref()

  return {
    counts,
    async stop (timeoutMs = 2000) {
      if (stopped) return
      stopped = true
      clearInterval(interval)
      if (summary !== undefined) clearInterval(summary)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs) })
      ])
      clearTimeout(timer)
      agent.destroy()
    }
  }
}
