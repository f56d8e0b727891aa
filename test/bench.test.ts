// `npm run bench -- --quick` end to end: it runs on the CPU adapter, every case validates, and its JSON is sane (finite, positive, every family and peer present).
//
// The bench is bundled with esbuild (node_modules stay external) so the test needs no prior `npm run build`; the bundle
// goes under node_modules/.cache so Node resolves those packages from it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const cache = path.join(root, 'node_modules', '.cache');
mkdirSync(cache, { recursive: true });
const tmp = mkdtempSync(path.join(cache, 'webgpu-lm-bench-'));
const out = path.join(tmp, 'bench.json');

interface Report {
  adapter: string;
  features: string[];
  quick: boolean;
  seconds: number;
  roofs: { copyGBs: number; fmaGflops: number; fmaF16Gflops: number | null };
  peers: Record<string, string>;
  kernels: { family: string; name: string; valid: boolean; error?: string; ms?: number; pctRoof?: number; gbs?: number; gflops?: number }[];
  matmulRaces: { name: string; oursMs: number; peers: Record<string, { valid: boolean; error?: string; ms?: number; oursSpeedup?: number }> }[];
  training: {
    config: string;
    ours: { valid: boolean; error?: string; losses?: number[]; tokensPerS?: number; encodeMs?: number; peakBytes?: number };
    oursFp16?: { valid: boolean; error?: string; tokensPerS?: number; peakBytes?: number; maxLossGap?: number };
    peers: Record<string, { valid: boolean; error?: string; tokensPerS?: number; oursSpeedup?: number }>;
  }[];
  notMeasured: string[];
}

let report: Report;
let stdout = '';

beforeAll(async () => {
  const bundle = path.join(tmp, 'bench.mjs');
  await build({ entryPoints: [path.join(root, 'bench/bench.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: bundle, logLevel: 'error' });
  const run = spawnSync(process.execPath, [bundle, '--quick', '--out', out], { cwd: root, encoding: 'utf8', timeout: 15 * 60_000 });
  stdout = run.stdout;
  if (run.status !== 0) throw new Error(`bench exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
  report = JSON.parse(readFileSync(out, 'utf8')) as Report;
}, 16 * 60_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const positive = (x: number | undefined): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

describe('npm run bench -- --quick', () => {
  it('measures finite, positive roofs on the adapter and says which adapter', () => {
    expect(report.quick).toBe(true);
    expect(report.adapter.length).toBeGreaterThan(0);
    expect(positive(report.roofs.copyGBs) && positive(report.roofs.fmaGflops)).toBe(true);
    // The f16 roof exists exactly where the adapter has shader-f16 (lavapipe has it).
    if (report.features.includes('shader-f16')) expect(positive(report.roofs.fmaF16Gflops ?? undefined)).toBe(true);
    else expect(report.roofs.fmaF16Gflops).toBeNull();
  });

  it('validates every kernel family before timing it, and every timing is finite against the roof', () => {
    const families = new Set(report.kernels.map((k) => k.family));
    for (const f of [
      'matmul', 'matmul f16', 'attention forward', 'attention backward', 'attention decode', 'layernorm forward', 'layernorm backward',
      'softmax', 'cross-entropy', 'adamw', 'clip', 'sampling', 'xlnet rel-attention forward', 'xlnet rel-attention backward',
    ]) expect(families, f).toContain(f);
    for (const k of report.kernels) {
      expect(k.error, `${k.family} ${k.name}`).toBeUndefined();
      expect(k.valid, `${k.family} ${k.name}`).toBe(true);
      expect(positive(k.ms) && positive(k.pctRoof) && positive(k.gbs), `${k.family} ${k.name}: ${JSON.stringify(k)}`).toBe(true);
      if (k.gflops !== undefined) expect(positive(k.gflops)).toBe(true);
    }
    // The sampling cases cover both vocabularies the issue names.
    expect(report.kernels.filter((k) => k.family === 'sampling').map((k) => k.name).join()).toMatch(/21128.*50257/);
  });

  it('races the peers on the same matmuls, each validated, with finite ratios', () => {
    expect(Object.keys(report.peers).sort()).toEqual(['jax-js', 'tfjs']);
    expect(report.matmulRaces.length).toBeGreaterThan(0);
    for (const r of report.matmulRaces) {
      expect(positive(r.oursMs)).toBe(true);
      for (const name of ['tfjs', 'jax-js']) {
        const p = r.peers[name]!;
        expect(p.error, `${name} ${r.name}`).toBeUndefined();
        expect(p.valid && positive(p.ms) && positive(p.oursSpeedup), `${name} ${r.name}`).toBe(true);
      }
    }
  });

  it('runs the tiny GPT-2 training step in ours (f32 and --fp16) and both peers, losses agreeing, with tokens/s, encoding time and peak memory', () => {
    expect(report.training.length).toBe(1);
    const t = report.training[0]!;
    expect(t.ours.error).toBeUndefined();
    expect(t.ours.valid).toBe(true);
    expect(t.ours.losses!.every(Number.isFinite)).toBe(true);
    expect(positive(t.ours.tokensPerS) && positive(t.ours.encodeMs) && positive(t.ours.peakBytes)).toBe(true);
    const h = t.oursFp16!;
    expect(h.error, 'ours --fp16').toBeUndefined();
    expect(h.valid && positive(h.tokensPerS) && positive(h.peakBytes) && h.maxLossGap! <= 1e-2, JSON.stringify(h)).toBe(true);
    for (const name of ['tfjs', 'jax-js']) {
      const p = t.peers[name]!;
      expect(p.error, name).toBeUndefined();
      expect(p.valid && positive(p.tokensPerS) && positive(p.oursSpeedup), name).toBe(true);
    }
  });

  it('prints the table and says what it does not measure yet', () => {
    expect(stdout).toMatch(/roofs: copy [\d.]+ GB\/s .* FMA [\d.]+ GFLOP\/s/);
    expect(stdout).toContain('GPT-2 training step');
    expect(report.notMeasured.length).toBeGreaterThan(0);
  });
});
