// Matmul tiles per adapter: every candidate tile shape against float64 (layouts, batches, split products, f16, epilogues, gradients), tuneMatmul() and its cache.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import * as w from '../src/index.js';
import { SKINNY_TILES, matmulGrid, matmulWGSL, tilesName } from '../kernels/matmul.js';
import { kernelVersion } from '../src/ops/matmul_tiles.js';
import { tuneMatmulCommand } from '../src/cli/tune_matmul.js';
import { geluTanh } from './reference/elementwise.js';
import { halfBits, halfValue } from './reference/half.js';
import { linearRef, matmulRef } from './reference/matmul.js';
import { expectClose, f32, numel, rand, sink, useGpu, values } from './helpers.js';

// Before anything reads the cache: this file's cache is its own, never the user's.
const dir = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-tiles-'));
process.env.WEBGPU_LM_CACHE_DIR = dir;
const file = path.join(dir, 'matmul-tiles.json');

useGpu();

afterEach(() => {
  vi.restoreAllMocks();
  rmSync(file, { recursive: true, force: true });
  w.setMatmulTiles(null);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Forward tolerance for dot products of length K: the bound test/matmul.test.ts explains. */
function tol(K: number): { atol: number; rtol: number } {
  return { atol: 1e-5 * Math.max(1, (K / 64) ** 1.5), rtol: 1e-5 };
}

let seed = 1;

/** Runs fn while recording the matmul launches it makes: kernel name, grid and label. */
function launches<T>(fn: () => T): { result: T; kernels: { name: string; grid: readonly number[]; label: string }[] } {
  const rt = w.runtime();
  const spy = vi.spyOn(rt, 'dispatch');
  try {
    const result = fn();
    const kernels = spy.mock.calls.filter(([k]) => k.name.startsWith('matmul:')).map(([k, args]) => ({ name: k.name, grid: args.grid, label: args.label }));
    return { result, kernels };
  } finally {
    spy.mockRestore();
  }
}

/**
 * matmul on random data against float64, in one launch of the kernel for `tiles` whose grid covers the product's
 * columns and `rows` (M, or the M·B of a batch folded into M) in whole tiles.
 */
async function checkProduct(tiles: w.MatmulTiles, as: number[], bs: number[], opts: w.MatmulOptions = {}, rows?: number, vec = ''): Promise<void> {
  const a = f32(rand(numel(as), seed++));
  const b = f32(rand(numel(bs), seed++));
  const ta = w.tensor(Float32Array.from(a), as);
  const tb = w.tensor(Float32Array.from(b), bs);
  const { result: y, kernels } = launches(() => w.matmul(ta, tb, opts));
  const what = `${tilesName(tiles)}: matmul [${as}]${opts.transA ? 'ᵀ' : ''} [${bs}]${opts.transB ? 'ᵀ' : ''}`;
  const ref = matmulRef({ data: a, shape: as, trans: opts.transA }, { data: b, shape: bs, trans: opts.transB });
  const M = ref.shape[ref.shape.length - 2]!;
  const N = ref.shape[ref.shape.length - 1]!;
  expect(kernels.length, what).toBe(1);
  expect(kernels[0]!.name, what).toMatch(new RegExp(`[^v]${vec}@${tilesName(tiles)}$`));
  expect(kernels[0]!.grid.slice(0, 2), `${what}: grid`).toEqual([Math.ceil(N / (tiles.WX * tiles.TN)), Math.ceil((rows ?? M) / (tiles.WY * tiles.TM))]);
  expectClose(await values(y), ref.data, tol(opts.transA ? as[as.length - 2]! : as[as.length - 1]!), what);
  for (const t of [ta, tb, y]) t.dispose();
}

/** [M, K]·[K, N] under a 2 KiB binding limit, in blocks of the kernel for `tiles`, against float64; returns the block starts. */
async function checkSplit(tiles: w.MatmulTiles, [M, K, N]: [number, number, number]): Promise<{ M: number[]; K: number[] }> {
  const a = f32(rand(M * K, seed++));
  const b = f32(rand(K * N, seed++));
  const ta = w.tensor(Float32Array.from(a), [M, K]);
  const tb = w.tensor(Float32Array.from(b), [K, N]);
  const rt = w.runtime();
  rt.setBindingLimit(2048);
  let split;
  try {
    split = launches(() => w.matmul(ta, tb));
  } finally {
    rt.setBindingLimit(null);
  }
  const what = `${tilesName(tiles)}: split [${M},${K}]·[${K},${N}]`;
  expect(split.kernels.length, `${what}: launches`).toBeGreaterThan(1);
  for (const k of split.kernels) expect(k.name, what).toMatch(new RegExp(`^matmul:nn:window(\\+acc)?@${tilesName(tiles)}$`));
  expectClose(await values(split.result), matmulRef({ data: a, shape: [M, K] }, { data: b, shape: [K, N] }).data, tol(K), what);
  for (const t of [ta, tb, split.result]) t.dispose();
  const starts = (re: RegExp): number[] => [...new Set(split.kernels.map((k) => Number(re.exec(k.label)![1])))].sort((p, q) => p - q);
  return { M: starts(/block rows (\d+)\./), K: starts(/ k (\d+)\./) };
}

describe('every candidate tile shape against float64', () => {
  for (const tiles of w.TILE_CANDIDATES) {
    it(`${w.describeTiles(tiles)}: plain and transposed operands, batches, and split products cut into whole tiles`, async () => {
      // Candidates over this adapter's limits are the tuner's to drop (lavapipe takes them all).
      if (w.tilesProblem(tiles, w.runtime().limits)) {
        expect(() => w.setMatmulTiles(tiles)).toThrow(RangeError);
        return;
      }
      expect(w.setMatmulTiles(tiles)).toMatchObject({ tiles, source: 'set' });
      // Sizes straddling every candidate's tiles (64 or 128 rows and columns, K slices 4 to 16), and 5 rows: the
      // fewest that are not skinny. A's staging depends only on transA and B's only on transB, so a·b and aᵀ·bᵀ run
      // all four staging loops (each layout compiles its own pipeline, seconds apiece on lavapipe).
      for (const [transA, transB] of [[false, false], [true, true]] as const) {
        for (const [M, K, N] of [[131, 67, 259], [5, 17, 65], [65, 3, 7]] as const) {
          await checkProduct(tiles, transA ? [K, M] : [M, K], transB ? [N, K] : [K, N], { transA, transB });
        }
      }
      // Batches: a shared weight folded into M, and a broadcast kept batch read transposed.
      await checkProduct(tiles, [3, 70, 19], [19, 66], {}, 210);
      await checkProduct(tiles, [2, 1, 11, 9], [1, 3, 70, 11], { transA: true, transB: true });
      // vec4 loads: stored rows and matrix starts that are multiples of 4 (sizes still straddle the tiles), in all
      // four staging loops, for one operand or both, and in batches.
      await checkProduct(tiles, [132, 68], [68, 260], {}, undefined, ':va:vb');
      await checkProduct(tiles, [68, 132], [260, 68], { transA: true, transB: true }, undefined, ':va:vb');
      await checkProduct(tiles, [5, 16], [16, 65], {}, undefined, ':va');
      await checkProduct(tiles, [16, 9], [65, 16], { transA: true, transB: true }, undefined, ':vb');
      await checkProduct(tiles, [3, 68, 20], [20, 64], {}, 204, ':va:vb');
      await checkProduct(tiles, [2, 1, 12, 8], [1, 3, 68, 12], { transA: true, transB: true }, undefined, ':va:vb');

      // Split products. A 2 KiB binding's windows hold 449 floats wherever they start (test/binding_split.test.ts):
      // [500, 2]·[2, 2] is cut into blocks of 224 rows, and [7, 600]·[600, 5] into blocks of 1 row and 89 of K
      // (continued in C by the accumulating variant); each rounded down to whole tiles of BM rows or BK deep.
      const whole = (n: number, step: number): number => n - (n % step);
      const starts = (n: number, block: number): number[] => Array.from({ length: Math.ceil(n / block) }, (_, i) => i * block);
      expect((await checkSplit(tiles, [500, 2, 2])).M).toEqual(starts(500, whole(224, tiles.WY * tiles.TM)));
      expect((await checkSplit(tiles, [7, 600, 5])).K).toEqual(starts(600, whole(89, tiles.BK)));
    });
  }

  it('f16 operands, a fused epilogue and gradients, with tiles that are not the default', async () => {
    // 64×128 with an 8×16 register tile: every size differs from the default's.
    const tiles = w.TILE_CANDIDATES[4]!;
    expect(tiles).toEqual({ WX: 8, WY: 8, TM: 8, TN: 16, BK: 8 });
    w.setMatmulTiles(tiles);
    const [M, K, N] = [37, 45, 70];
    // f16 operands: the reference multiplies the halves they hold.
    const x = Array.from(rand(M * K, seed++), (v) => halfValue(halfBits(v)));
    const wt = Array.from(rand(N * K, seed++), (v) => halfValue(halfBits(v)));
    const xh = w.tensor(Uint16Array.from(x, halfBits), [M, K]);
    const wh = w.tensor(Uint16Array.from(wt, halfBits), [N, K]);
    const { result: yh, kernels } = launches(() => w.matmul(xh, wh, { transB: true }));
    expect(kernels.map((k) => k.name)).toEqual([`matmul:nt:ha:hb@${tilesName(tiles)}`]);
    expectClose(await values(yh), matmulRef({ data: Float64Array.from(x), shape: [M, K] }, { data: Float64Array.from(wt), shape: [N, K], trans: true }).data, tol(K), 'f16');

    // y = r + gelu(x·Wᵀ + b) in one launch, then its gradients: with v = x·Wᵀ + b and dv = gelu'(v)·dy,
    // dx = dv·W, dW = dvᵀ·x, dr = dy.
    const xf = f32(rand(M * K, seed++));
    const wf = f32(rand(N * K, seed++));
    const bias = f32(rand(N, seed++));
    const r = f32(rand(M * N, seed++));
    const params = [[xf, [M, K]], [wf, [N, K]], [bias, [N]], [r, [M, N]]].map(([d, s]) => w.tensor(Float32Array.from(d as Float64Array), s as number[], { requiresGrad: true }));
    const { result: y, kernels: fusedKernels } = launches(() => w.linear(params[0]!, params[1]!, params[2]!, { gelu: 'tanh', residual: params[3]! }));
    expect(fusedKernels.map((k) => k.name)).toEqual([`matmul:nt+bias:gelu_tanh+pre:res@${tilesName(tiles)}`]);
    const v = linearRef({ data: xf, shape: [M, K] }, { data: wf, shape: [N, K] }, bias);
    expectClose(await values(y), v.map((vi, i) => r[i]! + geluTanh(vi)), tol(K), 'linear + gelu + residual');
    const dy = f32(rand(M * N, seed++));
    y.backward(w.tensor(Float32Array.from(dy), [M, N]));
    // gelu'(v) by a central difference of the float64 gelu: its error (~1e-10) is far under the tolerances.
    const dv = Float64Array.from(v, (vi, i) => ((geluTanh(vi + 1e-5) - geluTanh(vi - 1e-5)) / 2e-5) * dy[i]!);
    expectClose(await values(params[0]!.grad!), matmulRef({ data: dv, shape: [M, N] }, { data: wf, shape: [N, K] }).data, { atol: 1e-4, rtol: 1e-4 }, 'dx');
    expectClose(await values(params[1]!.grad!), matmulRef({ data: dv, shape: [M, N], trans: true }, { data: xf, shape: [M, K] }).data, { atol: 1e-4, rtol: 1e-4 }, 'dW');
    expectClose(await values(params[3]!.grad!), dy, { atol: 0, rtol: 0 }, 'dr');
    for (const t of [xh, wh, yh, y, ...params]) t.dispose();
  });
});

describe('vec4 loads', () => {
  it('stage exactly the values the scalar loads do: the same bits, for f32 and f16 operands in every layout', async () => {
    const rt = w.runtime();
    const run = async (tiles: w.MatmulTiles, variant: Parameters<typeof matmulWGSL>[0], [M, K, N]: number[], a: w.Tensor, b: w.Tensor): Promise<Uint32Array> => {
      const kernel = new w.Kernel(`matmul_vec_test:${JSON.stringify(variant)}@${tilesName(tiles)}`, matmulWGSL(variant, tiles));
      const c = w.empty([M!, N!]);
      const params = { M, N, K, keptRank: 0, sumRank: 0, sumCount: 1, keptShape: [], keptA: [], keptB: [], sumShape: [], sumA: [], sumB: [] };
      rt.dispatch(kernel, { buffers: [a.range, b.range, c.range], params, grid: [...matmulGrid(M!, N!, tiles), 1], label: kernel.name });
      const bits = new Uint32Array(((await c.toArray()) as Float32Array).buffer);
      c.dispose();
      return bits;
    };
    // The default, the skinny decode tile and the 8×16 register tile; M, K, N multiples of 4 that straddle them.
    for (const [tiles, M] of [[w.TILES, 132], [SKINNY_TILES[0]!, 4], [w.TILE_CANDIDATES[4]!, 68]] as const) {
      const [K, N] = [20, 260];
      // Each operand's staging depends on its layout and dtype: these four cover all four for both A and B.
      for (const [transA, transB, half] of [[false, false, false], [true, true, false], [false, true, true], [true, false, true]] as const) {
        {
          const operand = (n: number, shape: number[]): w.Tensor => {
            const v = rand(n, seed++);
            return half ? w.tensor(Uint16Array.from(v, halfBits), shape) : w.tensor(f32(v), shape);
          };
          const a = operand(M * K, transA ? [K, M] : [M, K]);
          const b = operand(K * N, transB ? [N, K] : [K, N]);
          const base = { transA, transB, bias: false, halfA: half, halfB: half };
          const scalar = await run(tiles, base, [M, K, N], a, b);
          const vec = await run(tiles, { ...base, vecA: true, vecB: true }, [M, K, N], a, b);
          const what = `${tilesName(tiles)} ${transA ? 't' : 'n'}${transB ? 't' : 'n'}${half ? ' f16' : ''}`;
          expect(scalar.some((x) => x !== 0), what).toBe(true);
          expect(vec, what).toEqual(scalar);
          for (const t of [a, b]) t.dispose();
        }
      }
    }
  });
});

/** A cache document as tuneMatmul() writes it, for this adapter unless `adapter` says otherwise. */
function cacheDocument(entries: { adapter?: Partial<w.AdapterIdentity>; kernel?: string; tiles: unknown }[]): string {
  const own = w.runtime().gpu.adapterInfo;
  return JSON.stringify({ format: 1, entries: entries.map((e) => ({ adapter: { ...own, ...e.adapter }, kernel: e.kernel ?? kernelVersion(), tiles: e.tiles })) });
}

const SMALL: w.MatmulTiles = { WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 };
const NARROW: w.MatmulTiles = { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 };

describe('tile validation', () => {
  it('rejects tiles the kernel or this adapter cannot run, naming why; setMatmulTiles changes nothing then', () => {
    const limits = w.runtime().limits;
    const bad: [unknown, RegExp][] = [
      [{ ...w.TILES, TM: 6 }, /multiples of 4/],
      [{ ...w.TILES, TN: 32 }, /at most 16/],
      [{ ...w.TILES, BK: 0 }, /BK must be a positive integer/],
      [{ ...w.TILES, WX: 2.5 }, /WX must be a positive integer/],
      [{ WX: 16, WY: 16, TM: 8, TN: 8 }, /BK must be a positive integer, got undefined/],
      [{ WX: 16, WY: 16, TM: 4, TN: 4, BK: 3 }, /split evenly over the 256 invocations/],
      [{ WX: 8, WY: 8, TM: 8, TN: 8, BK: 2 }, /BK must be a multiple of 4/],
      [{ WX: 64, WY: 64, TM: 4, TN: 4, BK: 16 }, /over this adapter's limits/],
      [{ ...w.TILES, BK: 64 }, /bytes of workgroup memory, over this adapter's/],
    ];
    const before = w.matmulTiles();
    for (const [tiles, why] of bad) {
      expect(w.tilesProblem(tiles as w.MatmulTiles, limits)).toMatch(why);
      expect(() => w.setMatmulTiles(tiles as w.MatmulTiles)).toThrow(RangeError);
    }
    expect(w.matmulTiles()).toEqual(before);
    // 128×128×16 stages 16.5 KiB: fine here (32 KiB), over an adapter that allows only WebGPU's guaranteed 16 KiB.
    const deep = { ...w.TILES, BK: 16 };
    expect(w.tilesProblem(deep, limits)).toBeNull();
    expect(w.tilesProblem(deep, { ...limits, maxComputeWorkgroupStorageSize: 16384 })).toMatch(/16896 bytes/);
  });
});

describe('tuneMatmul and the cache', () => {
  it('races a small candidate set, drops the invalid one, writes the cache for this adapter atomically, and a fresh load picks it up', async () => {
    expect(w.matmulTiles()).toMatchObject({ tiles: w.TILES, source: 'default', cache: file });
    const invalid = { ...w.TILES, TM: 6 };
    const log: string[] = [];
    const result = await w.tuneMatmul({
      candidates: [SMALL, invalid, NARROW],
      shapes: [{ name: 'tiny', M: 40, K: 24, N: 72 }, { name: 'tiny bᵀ', M: 9, K: 33, N: 20, transB: true }],
      rounds: 3,
      budgetMs: 1,
      log: (line) => log.push(line),
    });
    expect([SMALL, NARROW]).toContainEqual(result.tiles);
    expect(result.timing).toBe(w.runtime().gpu.features.has('timestamp-query') ? 'gpu-timestamps' : 'wall-clock');
    expect(result.candidates[1]).toMatchObject({ tiles: invalid, error: expect.stringMatching(/multiples of 4/) });
    for (const i of [0, 2]) {
      expect(result.candidates[i]!.error).toBeUndefined();
      expect(result.candidates[i]!.ms).toHaveLength(2);
      expect(result.candidates[i]!.score).toBeGreaterThan(0);
    }
    expect(log.some((l) => /^dropped .*multiples of 4/.test(l))).toBe(true);
    expect(result.savedTo).toBe(file);
    // The rename left only the document: no temporary file behind.
    expect(readdirSync(dir)).toEqual(['matmul-tiles.json']);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc).toMatchObject({ format: 1, entries: [{ adapter: w.runtime().gpu.adapterInfo, kernel: kernelVersion(), tiles: result.tiles, rounds: 3 }] });
    expect(w.matmulTiles()).toMatchObject({ tiles: result.tiles, source: 'tuned' });

    w.setMatmulTiles(w.TILES);
    expect(w.setMatmulTiles(null)).toMatchObject({ tiles: result.tiles, source: 'cache' });
    // A new device (as in a new process) looks its adapter up again at its first product.
    await w.shutdown();
    await w.init();
    const [a, b] = [w.zeros([20, 30]), w.zeros([30, 40])];
    const { kernels } = launches(() => w.matmul(a, b).dispose());
    expect(kernels[0]!.name).toMatch(new RegExp(`@${tilesName(result.tiles)}$`));
    expect(w.matmulTiles()).toMatchObject({ tiles: result.tiles, source: 'cache' });
    for (const t of [a, b]) t.dispose();
  });

  it('a candidate with wrong output is dropped and never chosen, though it would be the fastest', async () => {
    // Its launches are cut to one workgroup: a fraction of the work, and the rest of C stays NaN.
    const rt = w.runtime();
    const dispatch = rt.dispatch.bind(rt);
    vi.spyOn(rt, 'dispatch').mockImplementation((kernel, args) =>
      dispatch(kernel, args.label.includes(w.describeTiles(NARROW)) ? { ...args, grid: [1, 1, 1] } : args),
    );
    const shapes = [{ name: 'tiny', M: 70, K: 24, N: 72 }];
    const result = await w.tuneMatmul({ candidates: [NARROW, SMALL], shapes, rounds: 1, budgetMs: 1, save: false });
    expect(result.tiles).toEqual(SMALL);
    expect(result.candidates[0]!.error).toMatch(/^failed validation: 131×67·67×259: C\[0, 64\] is NaN/);
    expect(result.candidates[0]!.ms).toBeUndefined();
  });

  it('dry run (save: false) reports without caching or switching; an all-invalid set is an error', async () => {
    const shapes = [{ name: 'tiny', M: 16, K: 8, N: 16 }];
    const result = await w.tuneMatmul({ candidates: [SMALL], shapes, rounds: 1, budgetMs: 1, save: false });
    expect(result).toMatchObject({ tiles: SMALL, savedTo: '' });
    expect(existsSync(file)).toBe(false);
    expect(w.matmulTiles().source).toBe('default');
    await expect(w.tuneMatmul({ candidates: [{ ...w.TILES, TM: 5 }], shapes, rounds: 1 })).rejects.toThrow(/no candidate is valid on this adapter/);
  });

  it("another adapter's entry is not used, and saving keeps it beside this adapter's", async () => {
    const other = { description: 'another GPU', device: '0x1234' };
    writeFileSync(file, cacheDocument([{ adapter: other, tiles: SMALL }]));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(w.setMatmulTiles(null)).toMatchObject({ tiles: w.TILES, source: 'default' });
    expect(warn).not.toHaveBeenCalled();
    await w.saveMatmulTiles(NARROW, { note: 'by hand' });
    await w.saveMatmulTiles(SMALL);
    const { entries } = JSON.parse(readFileSync(file, 'utf8'));
    expect(entries.map((e: { adapter: w.AdapterIdentity; tiles: w.MatmulTiles }) => [e.adapter.description, e.tiles])).toEqual([
      ['another GPU', SMALL],
      [w.runtime().gpu.adapterInfo.description, SMALL],
    ]);
    expect(w.setMatmulTiles(null)).toMatchObject({ tiles: SMALL, source: 'cache' });
  });

  it('a corrupt, unreadable or stale cache is ignored with one warning naming the file, and matmul still works', async () => {
    const cases: [string, () => void, RegExp][] = [
      ['not JSON', () => writeFileSync(file, '{"format": 1, "entr'), /it is corrupt \(/],
      ['another format', () => writeFileSync(file, '{"format": 2, "entries": []}'), /it is corrupt \(not a format-1 document/],
      ['an entry without tiles', () => writeFileSync(file, JSON.stringify({ format: 1, entries: [{ adapter: w.runtime().gpu.adapterInfo, kernel: kernelVersion() }] })), /entry 0 lacks/],
      ['tiles the kernel rejects', () => writeFileSync(file, cacheDocument([{ tiles: { ...SMALL, TM: 3 } }])), /are not usable: TM and TN must be multiples of 4/],
      ['tiles over this adapter', () => writeFileSync(file, cacheDocument([{ tiles: { WX: 64, WY: 64, TM: 4, TN: 4, BK: 16 } }])), /over this adapter's limits/],
      ['another kernel version', () => writeFileSync(file, cacheDocument([{ kernel: 'deadbeef', tiles: SMALL }])), /another version of the matmul kernel/],
      ['a folder where the file should be', () => mkdirSync(file), /cannot be read .*EISDIR/],
    ];
    for (const [what, write, why] of cases) {
      rmSync(file, { recursive: true, force: true });
      write();
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      expect(w.setMatmulTiles(null), what).toMatchObject({ tiles: w.TILES, source: 'default' });
      expect(warn, what).toHaveBeenCalledTimes(1);
      const message = String(warn.mock.calls[0]![0]);
      expect(message, what).toMatch(why);
      expect(message, what).toContain(file);
      expect(message, what).toMatch(/delete it or tune again/);
      warn.mockRestore();
    }
    // The product runs on the defaults; saving replaces the unreadable document.
    rmSync(file, { recursive: true, force: true });
    writeFileSync(file, 'garbage');
    const a = w.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const b = w.tensor(Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    w.setMatmulTiles(null);
    const c = w.matmul(a, b);
    expect(Array.from(await c.toArray())).toEqual([4, 5, 10, 11]);
    expect(warn).toHaveBeenCalledTimes(1);
    await w.saveMatmulTiles(SMALL);
    expect(w.setMatmulTiles(null)).toMatchObject({ tiles: SMALL, source: 'cache' });
    expect(warn).toHaveBeenCalledTimes(1);
    for (const t of [a, b, c]) t.dispose();
  });
});

describe('webgpu-lm tune-matmul', () => {
  it('--help describes it, --show prints the tiles in use and the cache file, bad flags are usage errors', async () => {
    const help = sink();
    expect(await tuneMatmulCommand(['--help'], help)).toBe(0);
    expect(help.text).toMatch(/^usage: webgpu-lm tune-matmul \[options\]/);
    expect(help.text).toMatch(/--quick .*CPU adapter/);
    expect(help.text).toMatch(/--dry-run/);
    await w.saveMatmulTiles(SMALL);
    const show = sink();
    expect(await tuneMatmulCommand(['--show'], show)).toBe(0);
    expect(show.text).toContain(`cache:   ${file}`);
    expect(show.text).toContain(`in use:  ${w.describeTiles(SMALL)}, tuned in this process`);
    w.setMatmulTiles(null);
    const again = sink();
    await tuneMatmulCommand(['--show'], again);
    expect(again.text).toContain(`in use:  ${w.describeTiles(SMALL)}, cached for this adapter`);
    await expect(tuneMatmulCommand(['--rounds', '0'], sink())).rejects.toThrow(/--rounds must be at least 1/);
    await expect(tuneMatmulCommand(['--round', '3'], sink())).rejects.toThrow(/did you mean --rounds/);
  });
});
