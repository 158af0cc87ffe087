// Reads TAP streams (tap -R tap) — the files named on the command line, or stdin — and prints
// `N passed, N failed, N skipped` over all of them, counting the real test points at every depth
// (leaf assertions; a subtest's summary point is not counted twice).
import { Parser } from 'tap-parser';

let passed = 0;
let failed = 0;
let skipped = 0;
let todo = 0;

function watch(parser) {
  // a subtest's own summary point follows its child stream: count the leaves, not the summary
  let openChildren = 0;
  parser.on('child', (child) => {
    openChildren++;
    watch(child);
  });
  parser.on('assert', (res) => {
    const isSummary = openChildren > 0;
    if (isSummary) openChildren--;
    if (isSummary || res.subtest || res.buffered) {
      // a subtest's summary line: count a failure only if it failed without any failing child
      // (e.g. a timeout or a thrown error), which the leaves would not show
      if (!res.ok && !res.todo && !res.skip && res.diag && (res.diag.signal || res.diag.test || res.diag.timeout || res.diag.stack)) failed++;
      return;
    }
    if (res.skip) skipped++;
    else if (res.todo) todo++;
    else if (res.ok) passed++;
    else failed++;
  });
}

import fs from 'node:fs';

const files = process.argv.slice(2);
const streams = files.length ? files.map((f) => fs.createReadStream(f)) : [process.stdin];
let incomplete = false;
await Promise.all(
  streams.map(
    (stream) =>
      new Promise((resolve) => {
        const p = new Parser({ passes: true });
        watch(p);
        p.on('complete', (final) => {
          if (!final.ok) incomplete = true;
          resolve();
        });
        stream.pipe(p);
      }),
  ),
);
if (incomplete && failed === 0) failed = 1; // a run failed in a way no point shows
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
