/** Every error code is documented in docs/errors.md, and the doc lists no code that does not exist. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as errors from '../lib/errors'

t.test('docs/errors.md matches lib/errors.ts', async (t) => {
  const doc = readFileSync(join(__dirname, '..', 'docs', 'errors.md'), 'utf8')
  const codes = Object.keys(errors).filter((k) => k.startsWith('FNM_ERR_')).sort()
  const documented = [...doc.matchAll(/^\| `(FNM_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]).sort()
  t.same(documented, codes)
  for (const code of codes) {
    const E = (errors as unknown as Record<string, { code: string }>)[code]
    t.equal(E.code, code)
  }
})
