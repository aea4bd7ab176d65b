/** Code blocks of a Markdown page, so that tests run the docs' examples as they are written. */

/** A fenced code block: its language tag, its text, and the heading it is under. */
export interface CodeBlock {
  lang: string
  code: string
  heading: string
}

/** Every fenced (```) code block of `markdown`, in order. */
export function codeBlocks (markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  let heading = ''
  let open: { lang: string, lines: string[] } | undefined
  for (const line of markdown.split('\n')) {
    if (open !== undefined) {
      if (line.startsWith('```')) {
        blocks.push({ lang: open.lang, code: open.lines.join('\n') + '\n', heading })
        open = undefined
      } else {
        open.lines.push(line)
      }
    } else if (line.startsWith('```')) {
      open = { lang: line.slice(3).trim(), lines: [] }
    } else if (line.startsWith('#')) {
      heading = line.replace(/^#+\s*/, '')
    }
  }
  return blocks
}

/** The first block of language `lang` under the heading `heading` (exact text); throws if none. */
export function codeBlock (markdown: string, heading: string, lang: string): string {
  const block = codeBlocks(markdown).find((b) => b.heading === heading && b.lang === lang)
  if (block === undefined) throw new Error(`no \`\`\`${lang} block under "${heading}"`)
  return block.code
}
