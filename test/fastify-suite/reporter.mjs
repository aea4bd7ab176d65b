// A node:test reporter for the Fastify-suite harness (run.js): one JSON line per finished test,
// { file, path, outcome, error }, where path is the test's name below its ancestors' names.
import { relative } from 'node:path'

export default async function * reporter (source) {
  // Per file, the names of the tests currently open at each nesting level.
  const open = new Map()
  // Per file and path, how often it was seen, so that two tests of one name stay apart.
  const seen = new Map()
  for await (const event of source) {
    const data = event.data
    if (data == null || typeof data.file !== 'string') continue
    const file = relative(process.cwd(), data.file)
    if (event.type === 'test:start') {
      let stack = open.get(file)
      if (stack === undefined) open.set(file, stack = [])
      stack.length = data.nesting
      stack.push(data.name)
    } else if (event.type === 'test:pass' || event.type === 'test:fail') {
      const stack = open.get(file) ?? []
      const names = [...stack.slice(0, data.nesting), data.name].filter((n) => n !== data.file && n !== file)
      let path = names.join(' › ') || '<file>'
      const key = `${file}\0${path}`
      const n = (seen.get(key) ?? 0) + 1
      seen.set(key, n)
      if (n > 1) path += ` #${n}`
      const details = data.details ?? {}
      const outcome = event.type === 'test:fail' ? 'fail' : data.skip !== undefined ? 'skip' : data.todo !== undefined ? 'todo' : 'pass'
      let error
      if (outcome === 'fail') {
        const err = details.error?.cause ?? details.error
        error = String(err?.code ?? '') + ' ' + String(err?.message ?? err).split('\n').slice(0, 3).join(' ').slice(0, 300)
      }
      yield JSON.stringify({ file, path, outcome, error }) + '\n'
    }
  }
}
