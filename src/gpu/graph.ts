// capture(step): record a training step's GPU commands once, then replay them without running its JavaScript.
//
// A step of a 12-layer GPT-2 is ~700 kernel launches, and building each one in JavaScript (autograd graph,
// tensor bookkeeping, bind-group lookup) costs far more CPU time than the three native calls that encode it.
// When every step has the same shapes, the commands are the same too, so (like CUDA graphs) the first run
// records them and later steps only re-encode the list:
//
//   const graph = capture(() => { const loss = ...forward...; loss.backward(); opt.step(); model.zeroGrad(); return loss; });
//   ids.upload(nextBatch); opt.lr = lrAt(step); graph.replay();   // graph.outputs is the new loss
//
// What a replay repeats exactly: every dispatch (same pipeline, same buffers, same grid), copy, clear and upload
// (the uploaded bytes are the captured ones: new data goes into input tensors with upload() before replay()).
// What a replay recomputes: Params values given as functions (AdamW's learning rate and bias corrections), after
// the hooks registered with onReplay() (AdamW's step counts); and every Params field named `seed` that holds a seed
// nextSeed() drew during the capture is replaced by a fresh draw, in the same order, so dropout masks change from
// step to step and the global generator advances exactly as if the step had run eagerly. A replayed step therefore
// gives the same bits as the eager step would (test/graph.test.ts checks it over several steps).
//
// Memory: the buffers the step used for temporaries are taken out of the pool and belong to the graph until
// dispose(); tensors made outside it (weights, optimizer state, inputs) must stay alive, which replay() checks.
// Rules, checked with clear errors: no read-back inside the captured function; it must leave nothing allocated
// but its outputs (run one step eagerly first, so optimizer moments exist, and free .grad inside it); and
// everything that changes between steps must be a tensor's contents, a function-valued Param or a drawn seed.

import { nextSeed } from '../random.js';
import { collect, keep, tidy, type Tensor } from '../tensor.js';
import type { GpuBuffer } from './pool.js';
import { runtime, type ReplayCommand } from './runtime.js';

/** Registers host code every replay of the step being captured runs first (no-op when not capturing). */
export function onReplay(hook: () => void): void {
  const c = runtime().capturing;
  if (c) c.hooks.push(hook);
}

/** A uniform word a replay rewrites: from a function, or from the draw-th seed of this replay. */
type Slot = { word: number; view: 'u32' | 'i32' | 'f32'; fn: () => number } | { word: number; draw: number };

export class StepGraph<T> {
  /** What the captured function returned; every replay overwrites these tensors. */
  readonly outputs: T;
  /** Kernel launches per replay. */
  readonly dispatches: number;
  private readonly commands: ReplayCommand[];
  private readonly touched: GpuBuffer[];
  /** Buffers made outside the step, with how often each had been freed at capture time. */
  private readonly external: [GpuBuffer, number, string][];
  private readonly owned: GpuBuffer[];
  private readonly outputTensors: Tensor[];
  private readonly hooks: (() => void)[];
  private readonly seeds: number;
  private readonly slots: Slot[];
  private readonly uniforms: { bytes: ArrayBuffer; u32: Uint32Array; i32: Int32Array; f32: Float32Array; buffer: GPUBuffer | null };
  private readonly staging: GPUBuffer | null;
  /** Submit epoch of the last replay (its uniforms must be submitted before the next replay rewrites them). */
  private lastEpoch = -1;
  private disposed = false;

  /** Runs fn once (its commands execute as usual) and records them; see the file header. */
  constructor(fn: () => T) {
    const rt = runtime();
    rt.startCapture();
    let result: T;
    let cap;
    try {
      result = tidy(fn);
    } finally {
      cap = rt.endCapture();
    }
    const outs = new Set<Tensor>();
    collect(result, outs);
    this.outputTensors = [...outs];
    for (const t of this.outputTensors) keep(t);
    this.outputs = result;
    const outBuffers = new Set(this.outputTensors.map((t) => t.range.buf));
    const leftover = [...cap.acquired].filter((b) => !outBuffers.has(b));
    const seedDraw = new Map(cap.seeds.map((s, i) => [s, i]));
    if (leftover.length > 0 || seedDraw.size !== cap.seeds.length) {
      for (const t of this.outputTensors) t.dispose();
      throw new Error(
        leftover.length > 0
          ? `capture(): the step left ${leftover.length} GPU buffer(s) allocated besides its outputs (optimizer moments or gradients made by a first step?). ` +
              'Run the step once eagerly before capturing it, free .grad inside it (zeroGrad), and return every tensor it makes that must outlive it.'
          : 'capture(): two dropout seeds drawn during the capture are equal, so their uniforms cannot be told apart (chance ~1e-7); capture again.',
      );
    }

    // Buffers: free ones (the step's temporaries) become the graph's; the others must outlive it.
    const byId = new Map<number, [GpuBuffer, string]>();
    for (const c of cap.commands) {
      const ranges = c.kind === 'dispatch' ? c.buffers : c.kind === 'copy' ? [c.src, c.dst] : [c.dst];
      for (const r of ranges) if (!byId.has(r.buf.id)) byId.set(r.buf.id, [r.buf, c.kind === 'dispatch' ? c.label : c.kind]);
    }
    this.touched = [...byId.values()].map(([b]) => b);
    this.owned = this.touched.filter((b) => rt.pool.take(b));
    const owned = new Set(this.owned);
    this.external = [...byId.values()].filter(([b]) => !owned.has(b) && !outBuffers.has(b)).map(([b, label]) => [b, b.releases, label]);

    // Uniforms: every dispatch's Params block at its own aligned offset of one buffer.
    const align = rt.limits.minUniformBufferOffsetAlignment;
    let size = 0;
    const offsets = cap.commands.map((c) => {
      if (c.kind !== 'dispatch' || c.params.length === 0) return -1;
      const at = Math.ceil(size / align) * align;
      size = at + c.params.byteLength;
      return at;
    });
    const bytes = new ArrayBuffer(Math.max(16, size));
    this.uniforms = { bytes, u32: new Uint32Array(bytes), i32: new Int32Array(bytes), f32: new Float32Array(bytes), buffer: null };
    this.slots = [];
    let uploads = 0;
    cap.commands.forEach((c, i) => {
      if (c.kind === 'write') uploads += Math.ceil(c.data.byteLength / 4) * 4;
      if (c.kind !== 'dispatch' || offsets[i]! < 0) return;
      const base = offsets[i]! >> 2;
      this.uniforms.u32.set(c.params, base);
      for (const f of c.changing) {
        if (typeof f.value === 'function') this.slots.push({ word: base + f.word, view: f.scalar, fn: f.value });
        else if (seedDraw.has(f.value)) this.slots.push({ word: base + f.word, draw: seedDraw.get(f.value)! });
      }
    });
    const device = rt.device;
    const uniform = device.createBuffer({ size: bytes.byteLength, usage: 0x40 /* UNIFORM */ | 0x08 /* COPY_DST */, label: 'captured step uniforms' });
    device.queue.writeBuffer(uniform, 0, bytes);
    this.uniforms.buffer = uniform;
    this.staging = uploads > 0 ? device.createBuffer({ size: uploads, usage: 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */, label: 'captured step uploads' }) : null;

    // Commands, with their bind groups made once (bound to the graph's uniform buffer).
    const groups = new Map<string, GPUBindGroup>();
    let staged = 0;
    this.commands = cap.commands.map((c, i): ReplayCommand => {
      if (c.kind === 'copy') return { kind: 'copy', src: c.src.buf.buffer, srcOffset: c.src.offset, dst: c.dst.buf.buffer, dstOffset: c.dst.offset, size: c.size };
      if (c.kind === 'clear') return { kind: 'clear', dst: c.dst.buf.buffer, dstOffset: c.dst.offset, size: c.size };
      if (c.kind === 'write') {
        const at = staged;
        device.queue.writeBuffer(this.staging!, at, c.data);
        staged += Math.ceil(c.data.byteLength / 4) * 4;
        return { kind: 'copy', src: this.staging!, srcOffset: at, dst: c.dst.buf.buffer, dstOffset: c.dst.offset, size: c.data.byteLength };
      }
      const { pipeline, layout } = rt.pipelineOf(c.kernel);
      let key = String(c.kernel.id);
      for (const b of c.buffers) key += `|${b.buf.id}:${b.offset}:${b.size}`;
      let bindGroup = groups.get(key);
      if (!bindGroup) {
        let s = 0;
        const entries = c.kernel.bindings.map((b): GPUBindGroupEntry => {
          if (b.kind === 'uniform') return { binding: b.binding, resource: { buffer: uniform, offset: 0, size: c.kernel.paramsSize } };
          const r = c.buffers[s++]!;
          return { binding: b.binding, resource: { buffer: r.buf.buffer, offset: r.offset, size: Math.ceil(r.size / 4) * 4 } };
        });
        bindGroup = device.createBindGroup({ label: c.label, layout, entries });
        groups.set(key, bindGroup);
      }
      return { kind: 'dispatch', pipeline, bindGroup, offset: offsets[i]!, grid: c.grid, name: c.kernel.name, label: c.label };
    });
    this.dispatches = this.commands.filter((c) => c.kind === 'dispatch').length;
    this.hooks = cap.hooks;
    this.seeds = cap.seeds.length;
  }

  /** Runs the step again: hooks, fresh seeds and function-valued Params, then the recorded commands. Returns the outputs. */
  replay(): T {
    if (this.disposed) throw new Error('replay(): this captured step was disposed');
    const rt = runtime();
    if (rt.capturing) throw new Error('replay() inside capture(): capture the whole step instead');
    for (const [b, releases, label] of this.external) {
      if (b.releases !== releases) {
        throw new Error(`replay(): a tensor the captured step uses (in ${label}) was freed after the capture; capture the step again`);
      }
    }
    // The previous replay's uniforms may still wait in the unsubmitted encoder: submit them before rewriting.
    if (this.lastEpoch === rt.epoch) rt.flush();
    for (const hook of this.hooks) hook();
    const draws = Array.from({ length: this.seeds }, nextSeed);
    const u = this.uniforms;
    for (const s of this.slots) {
      if ('draw' in s) u.u32[s.word] = draws[s.draw]!;
      else u[s.view][s.word] = s.fn();
    }
    rt.device.queue.writeBuffer(u.buffer!, 0, u.bytes);
    rt.encodeReplay(this.commands, this.touched);
    this.lastEpoch = rt.epoch;
    return this.outputs;
  }

  /** Frees the graph's buffers and its outputs. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const rt = runtime();
    rt.flush();
    for (const b of this.owned) rt.pool.release(b);
    for (const t of this.outputTensors) t.dispose();
    this.uniforms.buffer?.destroy();
    this.staging?.destroy();
  }
}

/** Captures `fn` (running it once) into a StepGraph; see the file header for what a replay repeats and recomputes. */
export function capture<T>(fn: () => T): StepGraph<T> {
  return new StepGraph(fn);
}
