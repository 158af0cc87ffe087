// The layer rules of src/ (docs/development.md#layers), checked by `npm test`
// (test/foundation/layers.test.ts). Bottom to top:
//   core → db → store → keys → tokens → protocol → grants | accounts | backchannel → ops → http | cli → the composition root (src/*.ts)
// A module may import its own layer and the layers below it, never one above; no cycles at all;
// SQL (kysely's query builder and `sql`) only in db/ and store/.
const LAYERS = ['core', 'db', 'store', 'keys', 'tokens', 'protocol', '(grants|accounts|backchannel)', 'ops', '(http|cli)'];
const at = (i) => `^src/${LAYERS[i]}/`;
const above = (i) => `^src/(${LAYERS.slice(i + 1).join('|')})/|^src/[^/]+\\.ts$`;

module.exports = {
  forbidden: [
    { name: 'no-cycle', severity: 'error', comment: 'no import cycle, type-only imports included', from: {}, to: { circular: true } },
    ...LAYERS.map((layer, i) => ({
      name: `layer-${layer.replace(/[()|]/g, (c) => (c === '|' ? '-' : ''))}`,
      severity: 'error',
      comment: `${layer} imports only its own layer and the ones below it`,
      from: { path: at(i) },
      to: { path: above(i) },
    })),
    {
      name: 'sql-only-in-store',
      severity: 'error',
      comment: 'kysely values (sql, the query builder) only in db/ and store/; types anywhere',
      from: { path: '^src/', pathNot: '^src/(db|store)/' },
      to: { path: 'node_modules/kysely/', dependencyTypesNot: ['type-only'] },
    },
    { name: 'no-src-to-test', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench)/' } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
