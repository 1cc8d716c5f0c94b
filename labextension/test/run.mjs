// Unit tests without a browser: esbuild bundles each test (with the real @jupyterlab/services,
// whose ESM sources node cannot load directly) into CommonJS, then node's own test runner runs
// them. jsdom stays external: it is a CommonJS package node loads as is.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'build', 'unit-tests');
const tests = readdirSync(here).filter(f => f.endsWith('.test.ts'));
await build({
  entryPoints: tests.map(f => join(here, f)),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outdir,
  external: ['jsdom'],
  // @jupyterlab/ui-components imports its icons' SVG sources as strings (webpack's raw loader).
  loader: { '.svg': 'text' },
  // package.json's `sideEffects` (meant for the lab build) would let esbuild drop a bare
  // `import './dom-globals'`, which sets up the page lumino reads as it loads.
  ignoreAnnotations: true,
  logLevel: 'warning'
});
const run = spawnSync(
  process.execPath,
  ['--test', ...tests.map(f => join(outdir, f.replace(/\.ts$/, '.js')))],
  { stdio: 'inherit' }
);
process.exit(run.status ?? 1);
