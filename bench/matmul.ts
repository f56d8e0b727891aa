// Matmul tile tuning: our kernel with a few tile configurations, each validated against float64 then raced on one adapter (how kernels/matmul.ts's TILES was chosen).
//
//   npm run build && node dist/bench/matmul.js [--quick]
//     --quick  512³ and [256,768]·[768,3072] instead of 1024³ and [1024,768]·[768,3072], for a CPU adapter
//
// Every configuration writes into a NaN-filled output and is checked before the race (bench/common.ts: race, the
// median of interleaved rounds). The whole benchmark, with the peers, is `npm run bench` (bench/bench.ts).
// Results go to stdout and bench/out/matmul_tiles.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { Kernel, full, init, runtime, sync, tensor } from '../src/index.js';
import { TILES, matmulGrid, matmulWGSL, type MatmulTiles } from '../kernels/matmul.js';
import { race } from './common.js';
import { checkProduct, matmulOperands, type MatmulShape } from './kernels.js';

const QUICK = process.argv.includes('--quick');
const BT = QUICK ? 256 : 1024;
const SQUARE = QUICK ? 512 : 1024;
const SHAPES: MatmulShape[] = [
  { name: `${SQUARE}³`, M: SQUARE, K: SQUARE, N: SQUARE },
  { name: `GPT-2 MLP fc [${BT},768]·[768,3072]`, M: BT, K: 768, N: 3072 },
];

/** Tile configurations tried (BM×BN = WY·TM × WX·TN). */
const TUNE_TILES: MatmulTiles[] = [
  { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 },
  { WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 },
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 8 },
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 4 },
  { WX: 8, WY: 8, TM: 8, TN: 16, BK: 8 },
];

const describeTiles = (t: MatmulTiles): string => `BM ${t.WY * t.TM} BN ${t.WX * t.TN} BK ${t.BK} (${t.WX}×${t.WY} invocations × ${t.TM}×${t.TN})`;

const rt = await init();
console.log(`adapter: ${rt.gpu.name}\nkept tiles: ${JSON.stringify(TILES)}`);
const results = [];
for (const [i, s] of SHAPES.entries()) {
  const { a, b } = matmulOperands(s, 200 + 2 * i);
  const ta = tensor(a, [s.M, s.K]);
  const tb = tensor(b, [s.K, s.N]);
  const c = full([s.M, s.N], NaN);
  const params = { M: s.M, N: s.N, K: s.K, keptRank: 0, sumRank: 0, sumCount: 1, keptShape: [], keptA: [], keptB: [], sumShape: [], sumA: [], sumB: [] };
  console.log(`\n${s.name}  (${((2 * s.M * s.N * s.K) / 1e9).toFixed(2)} GFLOP)`);
  const racers = [];
  const valid: MatmulTiles[] = [];
  for (const tiles of TUNE_TILES) {
    const kernel = new Kernel(`matmul_tune ${JSON.stringify(tiles)}`, matmulWGSL({ transA: false, transB: false, bias: false }, tiles));
    const run = (): void => rt.dispatch(kernel, { buffers: [ta.range, tb.range, c.range], params, grid: matmulGrid(s.M, s.N, tiles), label: `${kernel.name} ${s.name}` });
    run();
    const error = checkProduct((await c.toArray()) as Float32Array, a, b, s);
    runtime().write(c.range, new Float32Array(s.M * s.N).fill(NaN));
    if (error) {
      console.log(`  ${describeTiles(tiles).padEnd(50)} INVALID: ${error}`);
      results.push({ shape: s.name, tiles, valid: false, error });
      continue;
    }
    racers.push({ run, drain: sync });
    valid.push(tiles);
  }
  const ms = await race(racers, QUICK ? 300 : 600);
  valid.forEach((tiles, j) => {
    const gflops = (2 * s.M * s.N * s.K) / (ms[j]! * 1e6);
    console.log(`  ${describeTiles(tiles).padEnd(50)} ${ms[j]!.toFixed(1).padStart(8)} ms ${gflops.toFixed(2).padStart(6)} GFLOP/s`);
    results.push({ shape: s.name, tiles, valid: true, ms: ms[j], gflops });
  });
  for (const t of [ta, tb, c]) t.dispose();
}

mkdirSync('bench/out', { recursive: true });
const report = { date: new Date().toISOString(), command: `node dist/bench/matmul.js ${process.argv.slice(2).join(' ')}`.trim(), adapter: rt.gpu.name, kept: TILES, results };
writeFileSync('bench/out/matmul_tiles.json', JSON.stringify(report, null, 2));
console.log('\nwrote bench/out/matmul_tiles.json');
// The Dawn device keeps Node's event loop alive; end explicitly once the report is written.
process.exit(0);
