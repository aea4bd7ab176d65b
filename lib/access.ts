/**
 * Access control for the metrics endpoint: an IP/CIDR allow-list, a bearer token, basic auth, or
 * an async function, all optional and combinable (the allow-list and the credentials must both
 * pass). Secrets are compared in constant time through HMACs of equal length, so neither the
 * content nor the length of a token leaks through timing, and no secret is ever logged.
 */
import type { FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { BlockList, isIP } from 'node:net'
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { FNM_ERR_OPTION_INVALID, FNM_ERR_OPTION_UNKNOWN } from './errors'

/**
 * What access control sees of a scrape, and what an `auth` function is given: the same shape on
 * the app's port and on the separate listener, so a function that decides by address or header
 * decides the same way on both.
 */
export interface ScrapeRequest {
  /** The request headers, names in lower case (Node's `IncomingHttpHeaders`). */
  readonly headers: IncomingHttpHeaders
  /**
   * The client's address: Fastify's `request.ip` on the app's port (honours `trustProxy`), the
   * socket's remote address on the separate listener.
   */
  readonly ip: string
  /** `GET` or `HEAD`. */
  readonly method: string
  /** The path and query string as the client sent them. */
  readonly url: string
  /** Node's request. */
  readonly raw: IncomingMessage
  /** The Fastify request (with the app's decorations) on the app's port; null on the separate listener. */
  readonly fastifyRequest: FastifyRequest | null
}

/** Decides whether a scrape may read the metrics: `true` allows it; anything else, or a throw, is 403. */
export type AuthFunction = (request: ScrapeRequest) => boolean | Promise<boolean>

/** The `auth` option. */
export type AuthOption =
  | { token?: string, basic?: { username: string, password: string } }
  | AuthFunction

/** The environment variable that sets a bearer token when `auth` is not given. */
export const TOKEN_ENV = 'METRICS_TOKEN'
/** The realm announced in `WWW-Authenticate`. */
export const AUTH_REALM = 'metrics'

/** The verdict: allowed, or the status and headers to answer with. */
export type AccessVerdict = { ok: true } | { ok: false, statusCode: 401 | 403, headers: Record<string, string> }

/** A checker built once from the options. */
export type AccessCheck = (scrape: ScrapeRequest) => Promise<AccessVerdict>

const key = randomBytes(32)
function digest (value: string): Buffer {
  return createHmac('sha256', key).update(value).digest()
}
/** Constant-time string comparison that does not leak the length of either side. */
export function safeEqual (a: string, expectedDigest: Buffer): boolean {
  return timingSafeEqual(digest(a), expectedDigest)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'string' ? 'a string' : typeof value
}

/** Validates the `allow` option into a BlockList (used as an allow-list). */
export function resolveAllow (value: unknown): BlockList | null {
  if (value === undefined) return null
  if (!Array.isArray(value) || value.length === 0) throw new FNM_ERR_OPTION_INVALID('allow', `expected a non-empty array of IP addresses or CIDR ranges, got ${describe(value)}`)
  const list = new BlockList()
  value.forEach((entry: unknown, i: number) => {
    const name = `allow[${i}]`
    if (typeof entry !== 'string') throw new FNM_ERR_OPTION_INVALID(name, `expected an IP address or CIDR range, got ${describe(entry)}`)
    const [address, prefixText, ...rest] = entry.trim().split('/')
    const family = isIP(address)
    if (family === 0 || rest.length > 0) throw new FNM_ERR_OPTION_INVALID(name, `not an IP address or CIDR range: ${JSON.stringify(entry)}`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (prefixText === undefined) {
      list.addAddress(address, type)
      return
    }
    const prefix = Number(prefixText)
    if (!/^\d+$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) throw new FNM_ERR_OPTION_INVALID(name, `bad prefix length in ${JSON.stringify(entry)}`)
    list.addSubnet(address, prefix, type)
  })
  return list
}

/** Whether an address is on the allow-list; IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match IPv4 rules. */
export function isAllowed (list: BlockList, ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  const address = mapped !== null ? mapped[1] : ip
  const family = isIP(address)
  if (family === 0) return false
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

interface ResolvedAuth {
  readonly token: Buffer | null
  readonly basic: Buffer | null
  readonly fn: AuthFunction | null
}

/**
 * Validates the `auth` option, or without it `METRICS_TOKEN` as read through the options' one rule
 * for environment variables (trimmed; unset, empty or spaces count as unset: no auth).
 */
export function resolveAuth (value: unknown, envToken: string | undefined): ResolvedAuth | null {
  if (value === undefined) return envToken === undefined || envToken === '' ? null : { token: digest(envToken), basic: null, fn: null }
  if (typeof value === 'function') return { token: null, basic: null, fn: value as AuthFunction }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FNM_ERR_OPTION_INVALID('auth', `expected { token }, { basic: { username, password } } or a function, got ${describe(value)}`)
  const o = value as Record<string, unknown>
  for (const k of Object.keys(o)) if (k !== 'token' && k !== 'basic') throw new FNM_ERR_OPTION_UNKNOWN(`auth.${k}`)
  let token: Buffer | null = null
  if (o.token !== undefined) {
    if (typeof o.token !== 'string' || o.token === '') throw new FNM_ERR_OPTION_INVALID('auth.token', 'expected a non-empty string')
    token = digest(o.token)
  }
  let basic: Buffer | null = null
  if (o.basic !== undefined) {
    const b = o.basic as Record<string, unknown> | null
    if (b === null || typeof b !== 'object') throw new FNM_ERR_OPTION_INVALID('auth.basic', 'expected { username, password }')
    for (const k of Object.keys(b)) if (k !== 'username' && k !== 'password') throw new FNM_ERR_OPTION_UNKNOWN(`auth.basic.${k}`)
    if (typeof b.username !== 'string' || b.username === '' || b.username.includes(':')) throw new FNM_ERR_OPTION_INVALID('auth.basic.username', 'expected a non-empty string without ":"')
    if (typeof b.password !== 'string' || b.password === '') throw new FNM_ERR_OPTION_INVALID('auth.basic.password', 'expected a non-empty string')
    basic = digest(`${b.username}:${b.password}`)
  }
  if (token === null && basic === null) throw new FNM_ERR_OPTION_INVALID('auth', 'give a token, basic credentials, or a function')
  return { token, basic, fn: null }
}

function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/**
 * Builds the checker used for every scrape, or null when the endpoint is open.
 * @param onError told when an auth function throws (the scrape is then refused)
 */
export function createAccessCheck (auth: ResolvedAuth | null, allow: BlockList | null, onError: (err: unknown) => void): AccessCheck | null {
  if (auth === null && allow === null) return null
  const challenge: string[] = []
  if (auth?.token != null) challenge.push(`Bearer realm="${AUTH_REALM}"`)
  if (auth?.basic != null) challenge.push(`Basic realm="${AUTH_REALM}", charset="UTF-8"`)
  const unauthorized: AccessVerdict = { ok: false, statusCode: 401, headers: { 'www-authenticate': challenge.join(', ') } }
  const forbidden: AccessVerdict = { ok: false, statusCode: 403, headers: {} }
  const ok: AccessVerdict = { ok: true }
  return async function checkScrape (scrape) {
    if (allow !== null && !isAllowed(allow, scrape.ip)) return forbidden
    if (auth === null) return ok
    if (auth.fn !== null) {
      try {
        return (await auth.fn(scrape)) === true ? ok : forbidden
      } catch (err) {
        onError(err)
        return forbidden
      }
    }
    const authorization = header(scrape.headers, 'authorization')
    if (authorization === undefined) return unauthorized
    const space = authorization.indexOf(' ')
    const scheme = authorization.slice(0, space === -1 ? undefined : space).toLowerCase()
    const credentials = space === -1 ? '' : authorization.slice(space + 1).trim()
    if (scheme === 'bearer' && auth.token !== null && safeEqual(credentials, auth.token)) return ok
    if (scheme === 'basic' && auth.basic !== null && safeEqual(Buffer.from(credentials, 'base64').toString('utf8'), auth.basic)) return ok
    return unauthorized
  }
}
