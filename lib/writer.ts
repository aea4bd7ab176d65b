/**
 * A growable byte buffer for exposition text. Rendering a large scrape as one string per sample
 * line made the garbage collector the main cost (hundreds of thousands of short strings); the
 * families instead copy cached byte slices (metric name, a series' labels, a bucket's `le`) and
 * write numbers as ASCII digits, so a scrape allocates almost nothing per line.
 */

const MINUS = 45
const ZERO = 48

/** One buffer that grows by doubling: the base of the text writer and of the protobuf writer (lib/protobuf.ts). */
export class GrowingBuffer {
  protected buf: Buffer
  protected pos = 0

  constructor (initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialSize)
  }

  /** Bytes written so far. */
  get length (): number {
    return this.pos
  }

  /** Makes room for `n` more bytes. */
  protected ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** Appends raw bytes. */
  bytes (b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** The bytes written (a view: do not write again afterwards). */
  toBuffer (): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

/** Appends bytes, text and numbers to one buffer that grows by doubling. */
export class ExpositionWriter extends GrowingBuffer {

  /** Appends one byte (an ASCII character code). */
  byte (c: number): void {
    this.ensure(1)
    this.buf[this.pos++] = c
  }

  /** Appends text as UTF-8. */
  text (s: string): void {
    this.ensure(s.length * 3)
    this.pos += this.buf.write(s, this.pos, 'utf8')
  }

  /** Appends a sample value the way `formatValue` formats it, integers without any allocation. */
  number (v: number): void {
    if (Number.isSafeInteger(v)) {
      this.ensure(17)
      let n = v
      if (n < 0) {
        this.buf[this.pos++] = MINUS
        n = -n
      }
      if (n < 10) {
        this.buf[this.pos++] = ZERO + n
        return
      }
      let digits = 0
      for (let m = n; m > 0; m = Math.floor(m / 10)) digits++
      let p = this.pos + digits - 1
      for (let m = n; m > 0; m = Math.floor(m / 10)) this.buf[p--] = ZERO + (m % 10)
      this.pos += digits
      return
    }
    this.text(Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf')
  }
}
