'use strict'
// `npm run bench`: every benchmark in turn.
const { execFileSync } = require('node:child_process')
const { existsSync } = require('node:fs')
const { join } = require('node:path')
for (const file of ['http.js', 'orm.js']) {
  if (!existsSync(join(__dirname, file))) continue
  console.log(`\n## ${file}\n`)
  execFileSync(process.execPath, [join(__dirname, file), ...process.argv.slice(2)], { stdio: 'inherit' })
}
