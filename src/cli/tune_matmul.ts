// `webgpu-lm tune-matmul`: race the matmul kernel's tile shapes on this adapter and cache the fastest valid one for it (src/ops/matmul_tune.ts).

import { init } from '../gpu/runtime.js';
import { describeTiles, matmulTiles } from '../ops/matmul_tiles.js';
import { tileCacheFile } from '../ops/matmul_tiles_node.js';
import { matmulTuneShapes, tuneMatmul } from '../ops/matmul_tune.js';
import { formatHelp, parseArgs, UsageError, type FlagSpec } from './args.js';

export const TUNE_MATMUL_FLAGS: FlagSpec[] = [
  { name: 'quick', type: 'bool', help: 'smaller products (512³, 256 tokens), for a CPU adapter' },
  { name: 'rounds', type: 'int', default: 5, help: 'interleaved rounds; each candidate keeps its median' },
  { name: 'budget-ms', type: 'float', default: 50, help: 'about how long one timing sample runs' },
  { name: 'dry-run', type: 'bool', help: 'race and report, but neither cache nor use the winner' },
  { name: 'show', type: 'bool', help: 'print the tiles in use and the cache file, and tune nothing' },
];

const SUMMARY = [
  "Race the matmul kernel's tile shapes on this adapter, each validated against float64 first, and cache the",
  'fastest for it; every later run on this adapter uses it. The cache is $WEBGPU_LM_CACHE_DIR/matmul-tiles.json,',
  'else $XDG_CACHE_HOME/webgpu-lm/, else ~/.cache/webgpu-lm/ (delete it to go back to the defaults).',
].join('\n');

export async function tuneMatmulCommand(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('tune-matmul', argv, TUNE_MATMUL_FLAGS);
  if (args.help) {
    out.write(formatHelp('tune-matmul', SUMMARY, TUNE_MATMUL_FLAGS));
    return 0;
  }
  if (args.positional.length > 0) throw new UsageError(`tune-matmul takes no positional arguments, got ${args.positional.join(' ')}`);
  const f = args.flags;
  const rounds = Number(f.rounds);
  const budgetMs = Number(f['budget-ms']);
  if (rounds < 1) throw new UsageError(`--rounds must be at least 1, got ${rounds}`);
  if (!(budgetMs > 0)) throw new UsageError(`--budget-ms must be positive, got ${budgetMs}`);

  const { gpu } = await init();
  const inUse = matmulTiles();
  const from = { default: 'the defaults', cache: 'cached for this adapter', tuned: 'tuned in this process', set: 'set by setMatmulTiles()' }[inUse.source];
  out.write(`adapter: ${gpu.name} (vendor "${gpu.adapterInfo.vendor}", architecture "${gpu.adapterInfo.architecture}")\n`);
  out.write(`cache:   ${tileCacheFile()}\nin use:  ${describeTiles(inUse.tiles)}, ${from}\n`);
  if (f.show) return 0;

  const shapes = f.quick ? matmulTuneShapes({ rows: 256, square: 512 }) : matmulTuneShapes();
  const started = performance.now();
  const result = await tuneMatmul({ shapes, rounds, budgetMs, save: !f['dry-run'], log: (line) => out.write(`  ${line}\n`) });

  const timing = result.timing === 'gpu-timestamps' ? 'GPU time from timestamp queries' : 'wall-clock time (no timestamp queries here)';
  out.write(`\nms per product, ${timing}, median of ${rounds} interleaved rounds; GFLOP/s of the geometric mean:\n`);
  // GFLOP/s of the geometric means: geomean(GFLOP) / geomean(s), the geometric mean of the per-shape GFLOP/s.
  const gflop = Math.exp(shapes.reduce((t, s) => t + Math.log((2 * s.M * s.N * s.K) / 1e9), 0) / shapes.length);
  const width = Math.max(...result.candidates.map((c) => describeTiles(c.tiles).length)) + 2;
  shapes.forEach((s, i) => out.write(`  shape ${i + 1}: ${s.name}\n`));
  out.write(`  ${'tiles'.padEnd(width)}${shapes.map((_, i) => `shape ${i + 1}`.padStart(10)).join('')}${'GFLOP/s'.padStart(10)}\n`);
  for (const c of result.candidates) {
    const mark = c.tiles === result.tiles ? ' *' : '';
    const row = c.ms ? `${c.ms.map((ms) => ms.toFixed(2).padStart(10)).join('')}${(gflop / (c.score! / 1e3)).toFixed(2).padStart(10)}` : `  dropped: ${c.error}`;
    out.write(`  ${describeTiles(c.tiles).padEnd(width)}${row}${mark}\n`);
  }
  out.write(`\nfastest: ${describeTiles(result.tiles)} ${JSON.stringify(result.tiles)} (${((performance.now() - started) / 1e3).toFixed(0)} s)\n`);
  out.write(result.savedTo ? `cached for this adapter in ${result.savedTo}\n` : 'not cached (--dry-run)\n');
  return 0;
}
