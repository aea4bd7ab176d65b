'use strict'
// What the benchmark scripts share: their numeric options, pinning a server to CPU 0 and the load
// generator to CPU 1 (when the machine has two), one load run against GET /item/:id, and medians.
const { execFileSync, fork, spawn, spawnSync } = require('node:child_process')
const os = require('node:os')
const { join } = require('node:path')

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const useTaskset = has('taskset') && os.cpus().length >= 2
const useWrk = has('wrk')

/** `--name N` from the command line, else `def`. */
function opt (name, def) {
  const args = process.argv.slice(2)
  const i = args.indexOf(`--${name}`)
  return i === -1 ? def : Number(args[i + 1])
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const round3 = (x) => Math.round(x * 1000) / 1000
/** Median and spread of a list of ratios, to three decimals. */
const summary = (xs) => ({ median: round3(median(xs)), min: round3(Math.min(...xs)), max: round3(Math.max(...xs)) })

/** The machine and load generator, for a result file. */
function machine () {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, pinned: useTaskset, loadTool: useWrk ? 'wrk' : 'autocannon' }
}

/** Forks a benchmark server, pinned to CPU 0 when pinning is possible; `execArgv` goes to Node. */
function forkServer (script, env, execArgv = []) {
  return useTaskset
    ? fork(script, [], { env, execPath: 'taskset', execArgv: ['-c', '0', process.execPath, ...execArgv] })
    : fork(script, [], { env, execArgv })
}

/**
 * Resolves with `child` once the benchmark server says it is ready. When its ready message carries
 * the port it listens on (bench/server.js with PORT=0), that is `child.port`.
 */
function whenReady (child, name) {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => {
      if (typeof m?.port === 'number') child.port = m.port
      resolve(child)
    })
    child.once('exit', (code) => reject(new Error(`${name} server exited ${code}`)))
  })
}

/** Forks a benchmark server (see forkServer) and resolves once it is ready (see whenReady). */
const startServer = (script, env, execArgv = []) => whenReady(forkServer(script, env, execArgv), env.MODE)

/**
 * Starts bench/server.js in MODE `mode` on a port the system picks (`child.port`; fixed ports can
 * collide with wrk's own sockets). `execArgv` goes to Node.
 */
const startBenchServer = (mode, execArgv = []) => startServer(join(__dirname, 'server.js'), { ...process.env, MODE: mode, PORT: '0' }, execArgv)

/** Stops a server with `signal` and resolves once it has exited (so the next one has the core). */
function stopServer (child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => { child.once('exit', resolve); child.kill(signal) })
}

/** A server's CPU time, requests served and monotonic clock (bench/server.js answers 'stats'). */
function stats (child) {
  return new Promise((resolve) => { child.once('message', resolve); child.send('stats') })
}

/** The wrk command line of one load run against GET /item/42, pinned to CPU 1 when possible. */
function wrkCommand (port, seconds, connections, extra = []) {
  return [...(useTaskset ? ['taskset', '-c', '1'] : []), 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, ...extra, `http://127.0.0.1:${port}/item/42`]
}

/** wrk against one port for `seconds` (pinned to CPU 1 when possible), output ignored; resolves when it exits. */
function runWrk (port, seconds, connections) {
  const cmd = wrkCommand(port, seconds, connections)
  return new Promise((resolve, reject) => {
    spawn(cmd[0], cmd.slice(1), { stdio: 'ignore' }).on('exit', (code) => code === 0 ? resolve() : reject(new Error(`wrk exited ${code}`)))
  })
}

/** One load run (wrk pinned to CPU 1, else autocannon): requests per second and p99 latency. */
function load (port, seconds, connections = 32) {
  if (useWrk) {
    const cmd = wrkCommand(port, seconds, connections, ['--latency'])
    const out = execFileSync(cmd[0], cmd.slice(1)).toString()
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])
    const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
    const p99ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN
    return { rps, p99ms }
  }
  const out = execFileSync(process.execPath, [require.resolve('autocannon/autocannon.js'), '-j', '-c', String(connections), '-d', String(seconds), `http://127.0.0.1:${port}/item/42`]).toString()
  const r = JSON.parse(out)
  return { rps: r.requests.average, p99ms: r.latency.p99 }
}

module.exports = { load, machine, median, opt, round3, runWrk, startBenchServer, startServer, stats, stopServer, summary, useTaskset, useWrk, whenReady, wrkCommand }
