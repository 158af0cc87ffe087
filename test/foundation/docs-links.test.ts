// The documentation holds together: every relative link in README.md, CHANGELOG.md and docs/*.md
// points to a file that exists and, with a #fragment, to a heading of that file (GitHub's anchors);
// README.md stays a newcomer's page (short, naming `npm start` and `npm test`) that maps every page
// of docs/. Needs no database and no server.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/process.js';

const README_MAX_LINES = 260;

const docsDir = path.join(ROOT, 'docs');
const docPages = fs.existsSync(docsDir)
  ? fs.readdirSync(docsDir).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(docsDir, f))
  : [];
const files = [path.join(ROOT, 'README.md'), path.join(ROOT, 'CHANGELOG.md'), ...docPages];

/** The file's lines outside fenced code blocks (``` or ~~~), with their 1-based numbers. */
function proseLines(text: string): Array<{ line: string; n: number }> {
  const out: Array<{ line: string; n: number }> = [];
  let fence: string | null = null;
  text.split('\n').forEach((line, i) => {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === null) fence = m[1]![0]!.repeat(m[1]!.length);
      else if (m[1]!.startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) out.push({ line, n: i + 1 });
  });
  return out;
}

/** Drops inline code spans (`code`, ``co`de``): a link inside one is not a link. */
const withoutCode = (line: string): string => line.replace(/(`+)[\s\S]*?\1/g, '');

/** GitHub's heading anchor: lowercase, punctuation dropped (but '-' and '_'), each space a '-'. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading: its text
    .replace(/<[^>]+>/g, '') // inline HTML
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a file's headings make, with GitHub's -1, -2 … for repeated headings. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { line } of proseLines(fs.readFileSync(file, 'utf8'))) {
    const m = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

interface Link {
  target: string;
  n: number;
}

/** Inline links and images `[text](target "title")`, `<target>` forms included, and reference definitions. */
function links(file: string): Link[] {
  const out: Link[] = [];
  for (const { line, n } of proseLines(fs.readFileSync(file, 'utf8'))) {
    const prose = withoutCode(line);
    for (const m of prose.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
      out.push({ target: m[1]!.replace(/^<|>$/g, ''), n });
    }
    const def = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(prose);
    if (def) out.push({ target: def[1]!.replace(/^<|>$/g, ''), n });
  }
  return out;
}

/** Links that leave the repository (a scheme such as https: or mailto:, or //host) are not checked. */
const external = (target: string): boolean => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//');

/** Why a relative link is broken, or null when it is fine. */
function broken(from: string, target: string): string | null {
  const hash = target.indexOf('#');
  const file = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const fragment = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  const resolved = file === '' ? from : path.resolve(path.dirname(from), file.split('?')[0]!);
  if (!path.relative(ROOT, resolved).split(path.sep).every((p) => p !== '..')) return `${file} is outside the repository`;
  if (!fs.existsSync(resolved)) return `${path.relative(ROOT, resolved)} does not exist`;
  if (fragment === null) return null;
  if (!resolved.endsWith('.md') || !fs.statSync(resolved).isFile()) return `#${fragment} on ${path.relative(ROOT, resolved)}, which has no headings`;
  if (!anchors(resolved).has(fragment)) return `${path.relative(ROOT, resolved)} has no heading #${fragment}`;
  return null;
}

t.test('the slug follows GitHub', async (t) => {
  t.equal(slug('When the database goes away'), 'when-the-database-goes-away');
  t.equal(slug('Revocation, honestly'), 'revocation-honestly');
  t.equal(slug('Token Status Lists: revocation at offline resource servers'), 'token-status-lists-revocation-at-offline-resource-servers');
  t.equal(slug('The `latchkey` command'), 'the-latchkey-command');
  t.equal(slug('Resource servers: @latchkey/verify'), 'resource-servers-latchkeyverify');
  t.equal(slug('DPoP: sender-constrained tokens (RFC 9449)'), 'dpop-sender-constrained-tokens-rfc-9449');
  t.equal(slug('snake_case and 2026-12-07'), 'snake_case-and-2026-12-07');
});

t.test('every relative link points to a file and a heading that exist', async (t) => {
  t.ok(docPages.length > 0, 'docs/ holds pages');
  for (const file of files) {
    const name = path.relative(ROOT, file);
    if (!fs.existsSync(file)) {
      t.fail(`${name} exists`);
      continue;
    }
    const relative = links(file).filter((l) => !external(l.target));
    for (const { target, n } of relative) {
      const why = broken(file, target);
      t.equal(why, null, `${name}:${n} → ${target}`);
    }
  }
});

t.test('README.md is a newcomer\'s page', async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const lines = readme.replace(/\n$/, '').split('\n').length;
  t.ok(lines <= README_MAX_LINES, `at most ${README_MAX_LINES} lines (it has ${lines}); reference belongs in docs/`);
  t.match(readme, /npm start/, 'names npm start');
  t.match(readme, /npm test/, 'names npm test');
  const linked = new Set(
    links(path.join(ROOT, 'README.md'))
      .filter((l) => !external(l.target))
      .map((l) => path.resolve(ROOT, decodeURIComponent(l.target.split('#')[0]!))),
  );
  for (const page of docPages) t.ok(linked.has(page), `README.md's map links ${path.relative(ROOT, page)}`);
});
