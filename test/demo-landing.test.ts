/**
 * The demo's landing page at `/`, opened in a real browser (Debian's headless `chromium`): it
 * says what the demo is, and every link on it, as the browser's DOM has it, answers (200, the one
 * 404 on purpose). The browser's visits are counted on /metrics exactly. The screenshot is the one
 * in docs/images (UPDATE_SCREENSHOTS=1 writes it there). Skips with a message without chromium;
 * .ci/run installs it.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MikroORM } from '@mikro-orm/postgresql'
import { buildApp, ormConfig, seed } from '../examples/app'
import { startDatabase } from '../examples/db'
import { LANDING_LINKS } from '../examples/landing'
import { get } from './helpers/net'

const CHROMIUM = process.env.CHROMIUM ?? 'chromium'
const version = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' })
if (version.status !== 0) {
  t.plan(0, 'chromium is not installed (Debian: apt-get install chromium); .ci/run installs it and runs this test')
} else {
  t.comment(version.stdout.trim())
  const profiles = mkdtempSync(join(tmpdir(), 'fnm-chromium-'))
  t.teardown(() => rmSync(profiles, { recursive: true, force: true }))
  let runs = 0

  /**
   * Headless chromium with a fresh profile and nothing in the background; resolves with stdout.
   * Asynchronous: the app it opens answers from this process.
   */
  const chromium = async (args: string[]): Promise<string> => await new Promise((resolve, reject) => {
    const child = spawn(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${join(profiles, String(++runs))}`, ...args
    ], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    child.on('error', reject)
    child.on('close', (code) => code === 0 ? resolve(stdout) : reject(new Error(`chromium ${args.join(' ')}: exit ${String(code)} ${stderr}`)))
  })

  t.test('the landing page in chromium', async (t) => {
    const db = await startDatabase()
    t.teardown(db.stop)
    const orm = await MikroORM.init(ormConfig(db.url))
    t.teardown(async () => await orm.close(true))
    await orm.schema.refreshDatabase()
    await seed(orm)
    const app = await buildApp({ orm })
    t.teardown(async () => await app.close())
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address()
    const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`

    const dom = await chromium(['--dump-dom', `${base}/`])
    t.match(dom, /<title>fastify-netbox-metrics demo<\/title>/)
    t.match(dom, /<h1>fastify-netbox-metrics demo<\/h1>/)
    t.match(dom, /NetBox-like DCIM API/, 'says what it is')
    const hrefs = [...dom.matchAll(/<a href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'))
    t.same([...new Set(hrefs)].sort(), LANDING_LINKS.map((l) => l.href).sort(), 'links to /metrics and the API routes')
    for (const href of new Set(hrefs)) {
      const r = await get(base + href)
      t.equal(r.status, href === '/api/dcim/nothing-here' ? 404 : 200, `${href} answers`)
    }

    const png = join(profiles, 'landing.png')
    await chromium([`--screenshot=${png}`, '--window-size=1000,1100', `${base}/`])
    const image = readFileSync(png)
    t.equal(image.subarray(1, 4).toString(), 'PNG', 'a PNG screenshot')
    t.same([image.readUInt32BE(16), image.readUInt32BE(20)], [1000, 1100], 'of the window size')
    if (process.env.UPDATE_SCREENSHOTS === '1') copyFileSync(png, join(__dirname, '..', 'docs', 'images', 'demo-landing.png'))

    // Two browser visits of `/` (the DOM dump and the screenshot), as the plugin counted them.
    const metrics = await get(`${base}/metrics`)
    t.same(metrics.body.split('\n').filter((l) => l.startsWith('http_requests_total{method="GET",route="/",')),
      ['http_requests_total{method="GET",route="/",status_code="200"} 2'])
  })
}
