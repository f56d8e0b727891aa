// Matmul tile tuning as a benchmark: the library's tuner (src/ops/matmul_tune.ts) on this adapter, with GFLOP/s per shape and a JSON report.
//
//   npm run build && node dist/bench/matmul.js [--quick] [--save]
//     --quick  512³ and 256-token GPT-2 products instead of 1024³ and 1024 tokens, for a CPU adapter
//     --save   also cache the winner for this adapter, as `webgpu-lm tune-matmul` does (by default nothing changes)
//
// Every candidate in kernels/matmul.ts's TILE_CANDIDATES that fits the adapter is validated against float64, then
// raced in interleaved rounds (medians). Results go to stdout and bench/out/matmul_tiles.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { describeTiles, init, matmulTiles, matmulTuneShapes, tileCacheFile, tuneMatmul } from '../src/index.js';

const QUICK = process.argv.includes('--quick');
const SAVE = process.argv.includes('--save');

const rt = await init();
const inUse = matmulTiles();
console.log(`adapter: ${rt.gpu.name}\ntiles in use: ${describeTiles(inUse.tiles)} (${inUse.source}; cache ${tileCacheFile()})`);
const shapes = QUICK ? matmulTuneShapes({ rows: 256, square: 512 }) : matmulTuneShapes();
const result = await tuneMatmul({ shapes, save: SAVE, log: (line) => console.log(`  ${line}`) });

console.log(`\n${result.timing === 'gpu-timestamps' ? 'GPU ms (timestamp queries)' : 'wall-clock ms'}, median of ${result.rounds} interleaved rounds`);
const rows = [];
for (const [i, s] of shapes.entries()) {
  const gflop = (2 * s.M * s.N * s.K) / 1e9;
  console.log(`\n${s.name}  (${gflop.toFixed(2)} GFLOP)`);
  for (const c of result.candidates) {
    const name = `${describeTiles(c.tiles)}${c.tiles === result.tiles ? ' *' : ''}`.padEnd(50);
    if (!c.ms) {
      console.log(`  ${name} dropped: ${c.error}`);
      continue;
    }
    const ms = c.ms[i]!;
    console.log(`  ${name} ${ms.toFixed(2).padStart(9)} ms ${(gflop / (ms / 1e3)).toFixed(2).padStart(8)} GFLOP/s`);
    rows.push({ shape: s.name, tiles: c.tiles, ms, gflops: gflop / (ms / 1e3) });
  }
}
console.log(`\nfastest (least geometric mean over the shapes): ${describeTiles(result.tiles)}${result.savedTo ? `, cached in ${result.savedTo}` : ''}`);

mkdirSync('bench/out', { recursive: true });
const report = {
  date: new Date().toISOString(),
  command: `node dist/bench/matmul.js ${process.argv.slice(2).join(' ')}`.trim(),
  adapter: rt.gpu.name,
  timing: result.timing,
  rounds: result.rounds,
  fastest: result.tiles,
  dropped: result.candidates.filter((c) => c.error).map(({ tiles, error }) => ({ tiles, error })),
  results: rows,
};
writeFileSync('bench/out/matmul_tiles.json', JSON.stringify(report, null, 2));
console.log('wrote bench/out/matmul_tiles.json');
// The Dawn device keeps Node's event loop alive; end explicitly once the report is written.
process.exit(0);
