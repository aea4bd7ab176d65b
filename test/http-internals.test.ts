/**
 * The internals check (hooks/http/fastify.ts): when a Fastify internal the package relies on is
 * not what it expects, only what depends on it is turned off, the failure is counted in
 * metrics_errors_total{component="http"}, one warning names the Fastify version, and the app's
 * responses stay as they are. The altered internal here: the names Fastify gives the bound copies
 * of hooks in a route context ('bound <name>'), by which the package finds its own onRequest hook
 * among them; a Fastify release that stopped binding them, or named them otherwise, would look so.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import netboxMetrics from '../lib/index'
import { lines, scrape, value } from './helpers/scrape'

/** Log lines of level warn, parsed. */
function warnings (): { stream: Writable, seen: Array<Record<string, unknown>> } {
  const seen: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line !== '') seen.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  return { stream, seen }
}

async function buildApp (withPlugin: boolean, stream: Writable): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: 'warn', stream } })
  if (withPlugin) await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.addHook('onRequest', async (request) => { (request as unknown as { seenBy: string }).seenBy = 'app hook' })
  app.get('/item/:id', { preHandler: async (request, reply) => { void reply.header('x-pre', 'ran') } }, async (request) => ({ id: (request.params as { id: string }).id, seenBy: (request as unknown as { seenBy: string }).seenBy }))
  app.post('/echo', async (request) => request.body)
  return app
}

/** Readies the app with Function.prototype.bind altered so that the bound hooks keep their own names. */
async function readyWithRenamedBoundHooks (app: FastifyInstance): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const originalBind = Function.prototype.bind
  Function.prototype.bind = function (this: (...args: unknown[]) => unknown, ...args: unknown[]) {
    const bound = originalBind.apply(this, args as [unknown, ...unknown[]])
    Object.defineProperty(bound, 'name', { value: this.name })
    return bound
  } as typeof originalBind
  try {
    await app.ready()
  } finally {
    Function.prototype.bind = originalBind
  }
}

async function exercise (app: FastifyInstance): Promise<unknown[]> {
  const out: unknown[] = []
  for (const r of [{ url: '/item/1' }, { url: '/item/2' }, { method: 'POST' as const, url: '/echo', payload: { a: 1 } }, { url: '/nope' }]) {
    const res = await app.inject(r)
    // Every header but `date`, which changes when the second does between the two apps' runs.
    const { date, ...headers } = res.headers
    out.push({ status: res.statusCode, body: res.body, headers, dated: typeof date === 'string' })
  }
  return out
}

t.test('a Fastify internal not as expected: phase timing off and absent, the error counted, one warning, responses unchanged', async (t) => {
  const bareLog = warnings()
  const bare = await buildApp(false, bareLog.stream)
  t.teardown(() => bare.close())
  await readyWithRenamedBoundHooks(bare)
  const expected = await exercise(bare)

  const log = warnings()
  const app = await buildApp(true, log.stream)
  t.teardown(() => app.close())
  await readyWithRenamedBoundHooks(app)
  t.same(await exercise(app), expected, 'every response as without the plugin')
  t.same(await exercise(app), expected, 'and again')

  const body = await scrape(app)
  t.equal(value(body, 'metrics_errors_total{component="http"}'), 1, 'the failed check counted once')
  t.notMatch(body, /^(# (HELP|TYPE) )?http_request_phase_duration_seconds/m, 'the phase family is absent, not empty')
  t.same(lines(body, 'http_requests_total'), [
    'http_requests_total{method="GET",route="/item/:id",status_code="200"} 4',
    'http_requests_total{method="GET",route="__unmatched__",status_code="404"} 2',
    'http_requests_total{method="POST",route="/echo",status_code="200"} 2'
  ], 'the families that need no internal are right')
  const ours = log.seen.filter((l) => String(l.msg).startsWith('fastify-netbox-metrics'))
  t.equal(ours.length, 1, 'one warning')
  t.match(String(ours[0]?.msg), `Fastify ${app.version} `, 'naming the Fastify version')
  t.match(String(ours[0]?.msg), /phase timing is off/, 'and what was turned off')
})

t.test('control: the same app without the alteration times its phases and reports nothing', async (t) => {
  const log = warnings()
  const app = await buildApp(true, log.stream)
  t.teardown(() => app.close())
  await app.ready()
  await exercise(app)
  const body = await scrape(app)
  t.equal(value(body, 'metrics_errors_total{component="http"}'), 0)
  t.equal(value(body, 'http_request_phase_duration_seconds_count{route="/item/:id",phase="preHandler"}'), 2)
  t.same(log.seen, [])
})
