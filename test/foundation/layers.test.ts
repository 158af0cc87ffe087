// The shape of src/ stays what docs/development.md#layers says (issue 24), checked with
// dependency-cruiser against .dependency-cruiser.cjs: no import cycle (type-only imports
// included), every import points down core → db → store → keys → tokens → protocol →
// grants|accounts|backchannel → ops → http|cli → the composition root; SQL only in db/ and store/;
// no source file over 400 lines. Needs no database and no server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import t from 'tap';
import { cruise } from 'dependency-cruiser';
import { ROOT } from '../helpers/process.js';

const require = createRequire(import.meta.url);
const rules = require(path.join(ROOT, '.dependency-cruiser.cjs')) as Parameters<typeof cruise>[1] extends infer O ? { forbidden: unknown[]; options: Record<string, unknown> } : never;

type Violation = { rule: { name: string }; from: string; to: string; cycle?: Array<{ name: string }> };

async function violations(dir: string, cwd: string): Promise<Violation[]> {
  const before = process.cwd();
  process.chdir(cwd);
  try {
    const result = await cruise([dir], { ...rules.options, tsConfig: { fileName: 'tsconfig.json' }, validate: true, ruleSet: { forbidden: rules.forbidden } } as never);
    const out = result.output as { summary: { violations: Violation[] } };
    return out.summary.violations;
  } finally {
    process.chdir(before);
  }
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('src/: no cycle, no upward import, kysely values only in db/ and store/', async (t) => {
  const found = await violations('src', ROOT);
  t.same(
    found.map((v) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (${v.cycle.map((c) => c.name).join(' → ')})` : ''}`),
    [],
    'no violation',
  );
});

t.test('the rules bite: a cycle and an upward import in a scratch tree are found', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-layers-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (f: string, body: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), body);
  };
  write('tsconfig.json', '{"compilerOptions": {"module": "NodeNext", "moduleResolution": "NodeNext"}}\n');
  write('src/core/a.ts', "import { b } from '../store/b.js';\nexport const a = b;\n");
  write('src/store/b.ts', "import { c } from './c.js';\nexport const b = c;\n");
  write('src/store/c.ts', "import { b } from './b.js';\nexport const c = 1; export const d = b;\n");
  const names = (await violations('src', dir)).map((v) => `${v.rule.name} ${v.from}`);
  t.ok(names.some((n) => n.startsWith('layer-core src/core/a.ts')), `core → store is refused (${names.join('; ')})`);
  t.ok(names.some((n) => n.startsWith('no-cycle')), 'the store cycle is found');
});

t.test('SQL statements only in src/db and src/store', async (t) => {
  const SQL = /\.(selectFrom|insertInto|updateTable|deleteFrom|replaceInto|mergeInto)\(|\bsql(<[^>]*>)?`/;
  const offenders: string[] = [];
  for (const f of sourceFiles(path.join(ROOT, 'src'))) {
    const rel = path.relative(ROOT, f);
    if (/^src\/(db|store)\//.test(rel)) continue;
    fs.readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (SQL.test(line) && !/^\s*(\/\/|\*)/.test(line)) offenders.push(`${rel}:${i + 1}: ${line.trim().slice(0, 100)}`);
      });
  }
  t.same(offenders, [], 'no SQL outside db/ and store/');
});

t.test('no source file over 400 lines', async (t) => {
  const long = sourceFiles(path.join(ROOT, 'src'))
    .map((f) => ({ f: path.relative(ROOT, f), n: fs.readFileSync(f, 'utf8').split('\n').length }))
    .filter((x) => x.n > 400)
    .map((x) => `${x.f}: ${x.n} lines`);
  t.same(long, [], 'every file of src/ has at most 400 lines');
});
