// Runtime: the one dispatch() chokepoint, command batching into one encoder, uploads, read-backs and error surfacing.
//
// Everything a step does is recorded into one GPUCommandEncoder (one compute pass, broken only for copies)
// and submitted once, at a read-back or an explicit flush(). Uniforms live in one "arena" buffer: each
// dispatch appends its Params block and binds it with a dynamic offset, so bind groups depend only on the
// storage buffers and are cached; the arena is uploaded just before the submit.

import { assertDeviceAlive, destroyDevice, getDevice, type DeviceOptions, type Gpu } from './device.js';
import { BufferPool, formatBytes, type GpuBuffer } from './pool.js';
import { Profiler, type KernelTime } from './profiler.js';
import type { Kernel, PackedField, ParamValues } from './kernel.js';

/** A storage buffer range bound to one kernel binding. */
export interface BufferRange {
  buf: GpuBuffer;
  offset: number;
  size: number;
}

export interface DispatchArgs {
  /** Storage buffers in binding order (the uniform is bound automatically). */
  buffers: readonly BufferRange[];
  /** Values for the kernel's `struct Params` fields. */
  params?: ParamValues;
  /** Workgroups in x, y, z. */
  grid: readonly [number, number?, number?];
  /** Kernel name and shapes, e.g. "matmul a[2,3,5] b[5,7]": shown in every error about this dispatch. */
  label: string;
}

/** One command of a captured step, in recording order (gpu/graph.ts replays them). */
export type CapturedCommand =
  | {
      kind: 'dispatch';
      kernel: Kernel;
      buffers: BufferRange[];
      /** The Params block as packed, and its fields that may change at a replay (functions, and seeds). */
      params: Uint32Array;
      changing: PackedField[];
      grid: [number, number, number];
      label: string;
    }
  | { kind: 'copy'; src: BufferRange; dst: BufferRange; size: number }
  | { kind: 'clear'; dst: BufferRange; size: number }
  | { kind: 'write'; dst: BufferRange; data: Uint8Array<ArrayBuffer> };

/** What Runtime records between startCapture() and endCapture(). */
export interface Capture {
  commands: CapturedCommand[];
  /** Seeds nextSeed() drew during the capture, in order. */
  seeds: number[];
  /** Host code a replay must run first, in order (an optimizer counting its steps): see gpu/graph.ts onReplay(). */
  hooks: (() => void)[];
  /** Pool buffers acquired during the capture and not released. */
  acquired: Set<GpuBuffer>;
}

export class GpuError extends Error {
  override name = 'GpuError';
}

const ARENA_BYTES = 1 << 20;
const BIND_GROUP_CACHE = 8192;

export class Runtime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly limits: GPUSupportedLimits;
  /** Submits so far; commands recorded now will go out in submit number `epoch`. */
  epoch = 0;
  readonly stats = { dispatches: 0, submits: 0, pipelines: 0, bindGroups: 0, readbacks: 0 };

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena: GPUBuffer;
  private readonly arenaCpu = new ArrayBuffer(ARENA_BYTES);
  private readonly arenaU32 = new Uint32Array(this.arenaCpu);
  private readonly arenaF32 = new Float32Array(this.arenaCpu);
  private readonly arenaI32 = new Int32Array(this.arenaCpu);
  private arenaUsed = 0;
  private readonly arenaAlign: number;
  private readonly pipelines = new Map<number, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private readonly pipelinesByCode = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** Upload staging buffers by size, free to write, and those the unsubmitted encoder copies from. */
  private readonly uploads = new Map<number, GPUBuffer[]>();
  private uploadsInFlight: GPUBuffer[] = [];
  /** Error scopes still to be read, each with what it covered. */
  private checks: Promise<GpuError | null>[] = [];
  private pendingError: GpuError | null = null;
  /** [kernel name, label] of each dispatch in the unsubmitted encoder, to name shapes if the submit fails. */
  private recorded: [string, string][] = [];
  private profiler: Profiler | null = null;
  private bindingLimitOverride: number | null = null;
  /** The step being captured (gpu/graph.ts), or null. */
  capturing: Capture | null = null;

  constructor(readonly gpu: Gpu) {
    this.device = gpu.device;
    this.limits = gpu.limits;
    this.pool = new BufferPool(this.device, this.limits.maxBufferSize);
    this.arenaAlign = this.limits.minUniformBufferOffsetAlignment;
    this.arena = this.device.createBuffer({ size: ARENA_BYTES, usage: 0x40 /* UNIFORM */ | 0x08 /* COPY_DST */, label: 'uniform arena' });
    this.device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.pendingError ??= new GpuError(`webgpu-lm: GPU error: ${e.message}`);
    });
  }

  /**
   * The most bytes one storage binding may hold: the adapter's maxStorageBufferBindingSize, or less after
   * setBindingLimit(). dispatch() checks every binding against it, and ops that bind tensors which can be
   * larger (embeddings, logits, their gradients, optimizer state) split their work so each binding fits it.
   */
  get bindingLimit(): number {
    return this.bindingLimitOverride ?? this.limits.maxStorageBufferBindingSize;
  }

  /**
   * Testing and debugging aid: pretend the adapter's binding limit is `bytes` (a multiple of
   * minStorageBufferOffsetAlignment, at least two of them, at most the real limit), so that tiny models
   * take the split-binding paths that large ones take on real adapters. null restores the real limit.
   */
  setBindingLimit(bytes: number | null): void {
    const { maxStorageBufferBindingSize: max, minStorageBufferOffsetAlignment: align } = this.limits;
    if (bytes !== null && !(Number.isInteger(bytes) && bytes % align === 0 && bytes >= 2 * align && bytes <= max)) {
      throw new RangeError(`setBindingLimit: bytes must be a multiple of ${align} in [${2 * align}, ${max}] (this adapter's maxStorageBufferBindingSize), got ${bytes}`);
    }
    this.bindingLimitOverride = bytes;
  }

  /** Records one kernel launch. Checks sizes against the adapter's limits before touching the GPU. */
  dispatch(kernel: Kernel, args: DispatchArgs): void {
    this.throwPending();
    const { buffers, grid, label } = args;
    if (buffers.length !== kernel.storageBindings.length) {
      throw new Error(`${label}: kernel ${kernel.name} takes ${kernel.storageBindings.length} storage buffers, got ${buffers.length}`);
    }
    const maxBinding = this.bindingLimit;
    const align = this.limits.minStorageBufferOffsetAlignment;
    for (const b of buffers) {
      if (b.size > maxBinding) {
        const which = this.bindingLimitOverride === null ? "this adapter's maxStorageBufferBindingSize" : 'the binding limit set by setBindingLimit()';
        throw new RangeError(
          `${label}: a ${formatBytes(b.size)} tensor is bound to one kernel binding, over ${which} of ${formatBytes(maxBinding)}. ` +
            'Use a smaller batch/vocabulary, f16, or a GPU with a larger limit.',
        );
      }
      if (b.offset % align !== 0) throw new RangeError(`${label}: a binding starts at byte ${b.offset}, not a multiple of minStorageBufferOffsetAlignment ${align}`);
    }
    const [x, y = 1, z = 1] = grid;
    const maxGrid = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxGrid || y > maxGrid || z > maxGrid) {
      throw new RangeError(`${label}: grid [${x},${y},${z}] exceeds maxComputeWorkgroupsPerDimension ${maxGrid}`);
    }
    if (x === 0 || y === 0 || z === 0) return;

    if (this.profiler?.full) this.flush(); // before the params go into the arena, which a submit resets
    const { pipeline, layout } = this.pipeline(kernel);
    let dynamicOffset = -1;
    if (kernel.paramsSize > 0) {
      let at = Math.ceil(this.arenaUsed / this.arenaAlign) * this.arenaAlign;
      if (at + kernel.paramsSize > ARENA_BYTES) {
        this.flush();
        at = 0;
      }
      const changing: PackedField[] | null = this.capturing ? [] : null;
      kernel.pack(args.params, this.arenaU32, this.arenaF32, this.arenaI32, at, changing ? (f) => void ((typeof f.value === 'function' || f.name === 'seed') && changing.push(f)) : undefined);
      this.arenaUsed = at + kernel.paramsSize;
      dynamicOffset = at;
      if (changing) this.record({ kind: 'dispatch', kernel, buffers: buffers.map((b) => ({ ...b })), params: this.arenaU32.slice(at >> 2, (at + kernel.paramsSize) >> 2), changing, grid: [x, y, z], label });
    } else if (this.capturing) {
      this.record({ kind: 'dispatch', kernel, buffers: buffers.map((b) => ({ ...b })), params: new Uint32Array(0), changing: [], grid: [x, y, z], label });
    }
    const bindGroup = this.bindGroup(kernel, layout, buffers, label);
    if (this.profiler) {
      this.endPass();
      this.pass = this.commandEncoder().beginComputePass({ timestampWrites: this.profiler.next(kernel.name) });
    }
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    if (dynamicOffset >= 0) pass.setBindGroup(0, bindGroup, [dynamicOffset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    for (const b of buffers) b.buf.lastUse = this.epoch;
    this.recorded.push([kernel.name, label]);
    this.stats.dispatches++;
    if (this.gpu.validate) this.flush(label);
  }

  /**
   * Internal (gpu/graph.ts): from now on every dispatch, copy, clear and upload is also recorded, with the Params
   * it packed, until endCapture(). The commands still run as usual.
   */
  startCapture(): void {
    if (this.capturing) throw new Error('webgpu-lm: capture() inside capture()');
    if (this.profiler) throw new Error('webgpu-lm: capture() while profiling; profile eager steps');
    this.capturing = { commands: [], seeds: [], hooks: [], acquired: new Set() };
    this.pool.tracking = this.capturing.acquired;
  }

  /** Internal (gpu/graph.ts): stops recording and hands over what was recorded. */
  endCapture(): Capture {
    const c = this.capturing;
    if (!c) throw new Error('webgpu-lm: endCapture() without startCapture()');
    this.capturing = null;
    this.pool.tracking = null;
    return c;
  }

  /** Internal (gpu/graph.ts): a kernel's compiled pipeline and bind group layout (compiled on first use). */
  pipelineOf(kernel: Kernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    return this.pipeline(kernel);
  }

  /**
   * Internal (gpu/graph.ts): encodes prepared commands into the current encoder, in order, as dispatch(), copy()
   * and clear() would, and marks the buffers they touch as used now.
   */
  encodeReplay(commands: readonly ReplayCommand[], touched: readonly GpuBuffer[]): void {
    this.throwPending();
    if (this.profiler) throw new Error('webgpu-lm: replay() while profiling; profile eager steps (train --eager-steps)');
    for (const c of commands) {
      if (c.kind === 'dispatch') {
        const pass = this.computePass();
        pass.setPipeline(c.pipeline);
        if (c.offset >= 0) pass.setBindGroup(0, c.bindGroup, [c.offset]);
        else pass.setBindGroup(0, c.bindGroup);
        pass.dispatchWorkgroups(c.grid[0], c.grid[1], c.grid[2]);
        this.recorded.push([c.name, c.label]);
        this.stats.dispatches++;
      } else {
        this.endPass();
        if (c.kind === 'copy') this.commandEncoder().copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
        else this.commandEncoder().clearBuffer(c.dst, c.dstOffset, c.size);
      }
    }
    for (const b of touched) b.lastUse = this.epoch;
  }

  private record(c: CapturedCommand): void {
    this.capturing?.commands.push(c);
  }

  /** Starts timing every dispatch on the GPU (see gpu/profiler.ts); needs the 'timestamp-query' feature. */
  startProfile(): void {
    if (!this.device.features.has('timestamp-query')) throw new Error("profiling needs the adapter's 'timestamp-query' feature");
    this.flush();
    this.profiler ??= new Profiler(this.device);
  }

  /** Stops timing; GPU milliseconds per kernel since startProfile(), the most first. */
  async stopProfile(): Promise<KernelTime[]> {
    const profiler = this.profiler;
    if (!profiler) throw new Error('stopProfile() without startProfile()');
    this.flush();
    this.profiler = null;
    return profiler.report();
  }

  /** Records a buffer-to-buffer copy (ends the compute pass; the next dispatch opens a new one). */
  copy(src: BufferRange, dst: BufferRange): void {
    this.throwPending();
    const size = align4(Math.min(src.size, dst.size));
    this.record({ kind: 'copy', src: { ...src }, dst: { ...dst }, size });
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src.buf.buffer, src.offset, dst.buf.buffer, dst.offset, size);
    src.buf.lastUse = dst.buf.lastUse = this.epoch;
  }

  /** Records a zero fill. */
  clear(dst: BufferRange): void {
    this.throwPending();
    this.record({ kind: 'clear', dst: { ...dst }, size: align4(dst.size) });
    this.endPass();
    this.commandEncoder().clearBuffer(dst.buf.buffer, dst.offset, align4(dst.size));
    dst.buf.lastUse = this.epoch;
  }

  /**
   * Uploads CPU data. queue.writeBuffer runs before the next submit, so it would overtake commands already
   * recorded (but not submitted) that use the same buffer. In that case the data goes into a staging buffer
   * the pending encoder does not touch, and a copy is recorded in order: an upload never splits a step.
   */
  write(dst: BufferRange, data: ArrayBufferView): void {
    this.throwPending();
    const bytes = align4(data.byteLength);
    const src = bytes === data.byteLength ? data : padTo4(data);
    this.record({ kind: 'write', dst: { ...dst }, data: new Uint8Array(src.buffer, src.byteOffset, bytes).slice() });
    if (!(dst.buf.lastUse === this.epoch && this.encoder)) {
      this.device.queue.writeBuffer(dst.buf.buffer, dst.offset, src.buffer, src.byteOffset, bytes);
      return;
    }
    const size = Math.max(16, bytes);
    const staging = this.uploads.get(size)?.pop() ?? this.device.createBuffer({ size, usage: 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */, label: 'upload' });
    this.device.queue.writeBuffer(staging, 0, src.buffer, src.byteOffset, bytes);
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(staging, 0, dst.buf.buffer, dst.offset, bytes);
    this.uploadsInFlight.push(staging);
  }

  /** Reads a buffer range back: submits everything recorded so far, waits, returns the bytes. */
  async read(src: BufferRange): Promise<ArrayBuffer> {
    if (this.capturing) throw new Error('webgpu-lm: a read-back inside a captured step (capture() records GPU work only; read its outputs after it)');
    const size = align4(src.size);
    const staging = this.staging.get(size)?.pop() ?? this.device.createBuffer({ size, usage: 0x01 /* MAP_READ */ | 0x08, label: 'read-back' });
    this.copy(src, { buf: { id: 0, buffer: staging, size, lastUse: 0, releases: 0 }, offset: 0, size });
    this.flush();
    this.stats.readbacks++;
    try {
      await staging.mapAsync(0x0001 /* GPUMapMode.READ */);
    } catch (e) {
      assertDeviceAlive();
      await this.checkErrors();
      throw e;
    }
    const out = staging.getMappedRange().slice(0, src.size);
    staging.unmap();
    let list = this.staging.get(size);
    if (!list) this.staging.set(size, (list = []));
    list.push(staging);
    await this.checkErrors();
    return out;
  }

  /** Submits what is recorded. `label` (validation mode) names the single dispatch the submit holds. */
  flush(label?: string): void {
    if (!this.encoder) return;
    this.endPass();
    this.profiler?.record(this.encoder);
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu, 0, this.arenaUsed);
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.device.queue.submit([this.encoder.finish()]);
    this.profiler?.submitted();
    const what = label ? ` in ${label}` : '';
    const recorded = this.recorded;
    this.recorded = [];
    const scope = (e: GPUError | null) => (e ? new GpuError(`webgpu-lm: GPU error${what}: ${e.message}${label ? '' : culprits(e.message, recorded)}`) : null);
    this.checks.push(this.device.popErrorScope().then(scope), this.device.popErrorScope().then(scope));
    this.encoder = null;
    this.arenaUsed = 0;
    // Staging buffers of this submit can take new data now: later writes are queued after it.
    for (const b of this.uploadsInFlight) {
      let list = this.uploads.get(b.size);
      if (!list) this.uploads.set(b.size, (list = []));
      list.push(b);
    }
    this.uploadsInFlight = [];
    this.epoch++;
    this.stats.submits++;
  }

  /** Submits and waits until the GPU is idle; rethrows any GPU error raised since the last check. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  /** Destroys buffers kept for reuse (pool and read-back staging) and drops cached bind groups. */
  trim(): void {
    this.flush();
    this.pool.trim();
    for (const map of [this.staging, this.uploads]) {
      for (const list of map.values()) for (const b of list) b.destroy();
      map.clear();
    }
    this.bindGroups.clear();
  }

  private async checkErrors(): Promise<void> {
    const checks = this.checks;
    this.checks = [];
    for (const e of await Promise.all(checks)) this.pendingError ??= e;
    this.throwPending();
  }

  private throwPending(): void {
    assertDeviceAlive();
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      throw e;
    }
  }

  private pipeline(kernel: Kernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    let p = this.pipelines.get(kernel.id);
    if (p) return p;
    // Two Kernel objects with the same WGSL (expand and permute share the strided gather) share one pipeline.
    p = this.pipelinesByCode.get(kernel.code);
    if (p) {
      this.pipelines.set(kernel.id, p);
      return p;
    }
    const d = this.device;
    d.pushErrorScope('validation');
    const layout = d.createBindGroupLayout({
      label: kernel.name,
      entries: kernel.bindings.map((b) => ({
        binding: b.binding,
        visibility: 0x4 /* GPUShaderStage.COMPUTE */,
        buffer:
          b.kind === 'uniform'
            ? { type: 'uniform' as const, hasDynamicOffset: true }
            : { type: b.kind === 'read' ? ('read-only-storage' as const) : ('storage' as const) },
      })),
    });
    const module = d.createShaderModule({ code: kernel.code, label: kernel.name });
    const pipeline = d.createComputePipeline({
      label: kernel.name,
      layout: d.createPipelineLayout({ bindGroupLayouts: [layout], label: kernel.name }),
      compute: { module, entryPoint: 'main' },
    });
    this.checks.push(d.popErrorScope().then((e) => (e ? new GpuError(`webgpu-lm: kernel ${kernel.name} failed to compile: ${e.message}`) : null)));
    p = { pipeline, layout };
    this.pipelines.set(kernel.id, p);
    this.pipelinesByCode.set(kernel.code, p);
    this.stats.pipelines++;
    return p;
  }

  private bindGroup(kernel: Kernel, layout: GPUBindGroupLayout, buffers: readonly BufferRange[], label: string): GPUBindGroup {
    let key = String(kernel.id);
    for (const b of buffers) key += `|${b.buf.id}:${b.offset}:${b.size}`;
    const hit = this.bindGroups.get(key);
    if (hit) {
      // Re-insert: Map order is our LRU order.
      this.bindGroups.delete(key);
      this.bindGroups.set(key, hit);
      return hit;
    }
    const entries: GPUBindGroupEntry[] = [];
    let i = 0;
    for (const b of kernel.bindings) {
      if (b.kind === 'uniform') {
        entries.push({ binding: b.binding, resource: { buffer: this.arena, offset: 0, size: kernel.paramsSize } });
      } else {
        const r = buffers[i++]!;
        entries.push({ binding: b.binding, resource: { buffer: r.buf.buffer, offset: r.offset, size: align4(r.size) } });
      }
    }
    const group = this.device.createBindGroup({ label, layout, entries });
    if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    this.bindGroups.set(key, group);
    this.stats.bindGroups++;
    return group;
  }

  private commandEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: `step ${this.epoch}` }));
  }

  private computePass(): GPUComputePassEncoder {
    return (this.pass ??= this.commandEncoder().beginComputePass());
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }
}

/** Dawn names the failing pipeline ([ComputePipeline "name"]); list that kernel's dispatches in the submit, with shapes. */
function culprits(message: string, recorded: readonly [string, string][]): string {
  const name = /\[ComputePipeline "([^"]+)"\]/.exec(message)?.[1];
  const hits = name ? recorded.filter(([k]) => k === name).map(([, l]) => l) : [];
  if (hits.length === 0) return '';
  const shown = hits.slice(0, 5).join('; ') + (hits.length > 5 ? `; and ${hits.length - 5} more` : '');
  return `\n  ${name} was launched as: ${shown} (WEBGPU_LM_VALIDATE=1 checks each launch on its own)`;
}

/** The bytes of `data` zero-padded to a multiple of 4 (writeBuffer and copies move whole words). */
function padTo4(data: ArrayBufferView): Uint8Array {
  const padded = new Uint8Array(align4(data.byteLength));
  padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return padded;
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** A captured command ready to encode again: the pipeline, bind group and uniform offset resolved. */
export type ReplayCommand =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; offset: number; grid: [number, number, number]; name: string; label: string }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number }
  | { kind: 'clear'; dst: GPUBuffer; dstOffset: number; size: number };

let rt: Runtime | null = null;

/** nextSeed() reports each seed it draws here, so a step being captured knows which Params words are seeds. */
export function noteSeed(seed: number): void {
  rt?.capturing?.seeds.push(seed);
}

/** Creates the device (once) and the runtime. Call before making tensors: `await init()`. */
export async function init(options: DeviceOptions = {}): Promise<Runtime> {
  const gpu = await getDevice(options);
  if (!rt || rt.gpu !== gpu) rt = new Runtime(gpu);
  return rt;
}

/** Destroys the device and the runtime on purpose; init() afterwards starts fresh. */
export async function shutdown(): Promise<void> {
  rt = null;
  await destroyDevice();
}

/** The runtime, for synchronous code (ops, tensors). Throws if init() has not finished. */
export function runtime(): Runtime {
  if (!rt) throw new Error('webgpu-lm: no GPU device yet. Call `await init()` once before creating tensors.');
  assertDeviceAlive();
  return rt;
}

/** Submits all recorded GPU work now (a training step calls this once at its end). */
export function flush(): void {
  rt?.flush();
}

/** Waits for all submitted GPU work; rethrows GPU errors. */
export async function sync(): Promise<void> {
  await rt?.sync();
}
