// The documentation stays inside the repository: every relative link (and image) in README.md and docs/*.md names a
// file or folder of this checkout, every #anchor names a heading of its target (GitHub's slugs), no link or path
// leaves the repository (../shared, /work/...), and docs/METHODS.md has one section per method of src/methods.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { METHOD_NAMES } from '../src/methods.js';

const test = suite('docs');
const ROOT = resolve('.');
const DOCS = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The text outside fenced code blocks (links in ``` blocks are code, not links). */
const prose = (md: string) => md.replace(/^```[\s\S]*?^```/gm, '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered -1, -2, ... */
export function anchors(md: string): Set<string> {
  const seen = new Map<string, number>(), out = new Set<string>();
  for (const m of prose(md).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1].replace(/<[^>]+>/g, '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

/** [text](target) and ![alt](target) links, and reference definitions `[id]: target`. */
function links(md: string): string[] {
  const text = prose(md).replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g), ...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]);
}

test('anchor slugs follow GitHub (the rule the link check relies on)', () => {
  assert.equal([...anchors('# API\n## gradcam\n## gradcam++\n## In a page\n### `camgpu eval --report`\n```\n# not a heading\n```\n')],
    ['api', 'gradcam', 'gradcam-1', 'in-a-page', 'camgpu-eval---report']);
});

for (const doc of DOCS) {
  test(`${doc}: every relative link resolves inside the repository`, () => {
    const md = readFileSync(doc, 'utf8'), bad: string[] = [];
    for (const link of links(md)) {
      if (/^(https?:|mailto:)/.test(link)) continue;
      if (/^[a-z][a-z0-9+.-]*:/i.test(link) || link.startsWith('/')) { bad.push(`${link}: not a relative link`); continue; }
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path ? normalize(join(dirname(doc), decodeURIComponent(path))) : doc;
      if (relative(ROOT, resolve(target)).startsWith('..')) { bad.push(`${link}: leaves the repository`); continue; }
      if (!existsSync(target)) { bad.push(`${link}: ${target} does not exist`); continue; }
      if (anchor && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor)) bad.push(`${link}: no heading #${anchor} in ${target}`);
    }
    assert.equal(bad, [], `${doc}:\n  ${bad.join('\n  ')}`);
  });
  test(`${doc}: no path outside the repository, in links or text`, () => {
    const hits = [...readFileSync(doc, 'utf8').matchAll(/(?:\.\.\/)+shared\/\S*|\/work\/\S*/g)].map((m) => m[0]);
    assert.equal(hits, []);
  });
}

test('docs/METHODS.md has one section per method of src/methods.ts, and nothing else named like one', () => {
  const md = readFileSync('docs/METHODS.md', 'utf8');
  const sections = [...prose(md).matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1]).filter((h) => /^[a-z][a-z+-]*$/.test(h));
  assert.equal([...sections].sort(), [...METHOD_NAMES].sort());
  for (const m of METHOD_NAMES) {
    const body = md.split(new RegExp(`^## ${m.replace(/[+]/g, '\\+')}\\s*$`, 'm'))[1].split(/^## /m)[0];
    for (const field of ['Formula:', 'Reference implementation:', 'Paper:']) assert.ok(body.includes(field), `${m}: ${field}`);
  }
});

test('README and src/methods.ts point at docs/METHODS.md', () => {
  assert.ok(links(readFileSync('README.md', 'utf8')).includes('docs/METHODS.md'), 'README links docs/METHODS.md');
  assert.match(readFileSync('src/methods.ts', 'utf8'), /docs\/METHODS\.md/);
});

test.run();
