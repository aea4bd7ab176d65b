/**
 * Serving a scrape: access control, format negotiation, gzip, and the optional separate listener
 * (`server: { port, host }` or `METRICS_PORT`) that serves the endpoint on its own port instead
 * of the app's. The app's route and the separate listener share `serveScrape`.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import type { AccessCheck, ScrapeRequest } from './access'
import { contentType, negotiateFormat, type ExpositionFormat } from './exposition'

const gzip = promisify(gzipCallback)

/** Smallest body worth compressing. */
export const GZIP_MIN_BYTES = 1024

/** What serving a scrape needs, built once at registration. */
export interface ScrapeServer {
  readonly check: AccessCheck | null
  /** Renders the exposition: the registry's, or every process's in multi-process mode. */
  readonly render: (format: ExpositionFormat) => Promise<string | Buffer>
}

/** The answer to one scrape. */
export interface ScrapeResponse {
  statusCode: number
  headers: Record<string, string>
  body: string | Buffer
}

function header (headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** Answers one scrape: 401/403 when access control refuses it, else the exposition (gzipped when asked). */
export async function serveScrape (server: ScrapeServer, scrape: ScrapeRequest): Promise<ScrapeResponse> {
  const headers = scrape.headers
  if (server.check !== null) {
    const verdict = await server.check(scrape)
    if (!verdict.ok) {
      return { statusCode: verdict.statusCode, headers: { ...verdict.headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: verdict.statusCode === 401 ? 'Unauthorized\n' : 'Forbidden\n' }
    }
  }
  const format = negotiateFormat(header(headers, 'accept'))
  const text = await server.render(format)
  const out: ScrapeResponse = {
    statusCode: 200,
    headers: { 'content-type': contentType(format), 'cache-control': 'no-store', vary: 'accept, accept-encoding' },
    body: text
  }
  const acceptEncoding = header(headers, 'accept-encoding')
  if (acceptEncoding !== undefined && /\bgzip\b/i.test(acceptEncoding) && !/\bgzip\s*;\s*q=0(\.0*)?\b/i.test(acceptEncoding) && Buffer.byteLength(text) >= GZIP_MIN_BYTES) {
    out.body = await gzip(text)
    out.headers['content-encoding'] = 'gzip'
  }
  return out
}

/** Where the separate listener listens. */
export interface ListenerAddress {
  readonly port: number
  readonly host: string
}

/**
 * Starts the separate metrics listener. Only `endpoint` answers (GET and HEAD); anything else is
 * 404 or 405. Resolves with the bound address once listening.
 */
export async function startListener (server: ScrapeServer, endpoint: string, address: ListenerAddress, onError: (err: unknown) => void): Promise<http.Server> {
  const listener = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== endpoint) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n')
      return
    }
    const scrape: ScrapeRequest = Object.freeze({ headers: req.headers, ip: req.socket.remoteAddress ?? '', method: req.method, url: req.url ?? '', raw: req, fastifyRequest: null })
    serveScrape(server, scrape).then((answer) => {
      res.writeHead(answer.statusCode, { ...answer.headers, 'content-length': String(Buffer.byteLength(answer.body)) })
      res.end(req.method === 'HEAD' ? undefined : answer.body)
    }, (err: unknown) => {
      onError(err)
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('Internal Server Error\n')
    })
  })
  listener.on('clientError', (_err, socket) => { socket.destroy() })
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject)
    listener.listen(address.port, address.host, () => {
      listener.off('error', reject)
      resolve()
    })
  })
  return listener
}

/** The bound port of a started listener. */
export function listenerPort (listener: http.Server): number {
  return (listener.address() as AddressInfo).port
}
