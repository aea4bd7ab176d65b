/**
 * The README's metric table and docs/metrics.md list exactly the families the code registers
 * (the CATALOGUE), with the same types and labels, so docs and code cannot drift apart; and the
 * README's map of where things are names files that exist.
 */
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CATALOGUE } from '../lib/metrics'

const root = join(__dirname, '..')
const families = Object.values(CATALOGUE).map((s) => `${s.name} | ${s.type} | ${s.labelNames.join(', ')}`).sort()

function tableRows (text: string): string[] {
  return [...text.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([a-z_, ]+) \|/gm)].map((m) => `${m[1]} | ${m[2]} | ${m[3].trim()}`).sort()
}

t.test('README metric table', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const table = readme.slice(readme.indexOf('<!-- metric-table:start -->'), readme.indexOf('<!-- metric-table:end -->'))
  t.same(tableRows(table), families)
})

t.test('docs/metrics.md', async (t) => {
  t.same(tableRows(readFileSync(join(root, 'docs', 'metrics.md'), 'utf8')), families)
})

t.test('README file map names files that exist', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const map = readme.slice(readme.indexOf('Where things are:'), readme.indexOf('## License'))
  const paths = [...map.matchAll(/`((?:lib|hooks)\/[\w.-]+\.ts)`/g)].map((m) => m[1])
  t.ok(paths.length >= 10, `the map names ${paths.length} files`)
  for (const p of paths) t.ok(existsSync(join(root, p)), p)
})

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

t.test('relative links in README.md and docs/ point at files and headings that exist', async (t) => {
  const { readdirSync } = await import('node:fs')
  const { dirname, resolve } = await import('node:path')
  const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))]
  const anchors = new Map<string, Set<string>>()
  const anchorsOf = (file: string): Set<string> => {
    let set = anchors.get(file)
    if (set === undefined) {
      const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '')
      set = new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])))
      anchors.set(file, set)
    }
    return set
  }
  let checked = 0
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8').replace(/```[\s\S]*?```/g, '')
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]
      if (/^[a-z]+:/.test(target)) continue
      const [path, anchor] = target.split('#')
      const file = path === '' ? join(root, f) : resolve(dirname(join(root, f)), path)
      checked++
      if (!existsSync(file)) { t.fail(`${f}: ${target}: no such file`); continue }
      if (anchor !== undefined && file.endsWith('.md') && !anchorsOf(file).has(anchor)) t.fail(`${f}: ${target}: no such heading`)
    }
  }
  t.ok(checked > 20, `${checked} links checked`)
})
