// GPU time per kernel from timestamp queries: while profiling, every dispatch runs in its own compute pass that writes a begin and an end timestamp.
//
// Usage: runtime().startProfile(); ...work...; const report = await runtime().stopProfile();
// The pass-per-dispatch layout adds a little overhead of its own, so use it to find where time goes, not to
// quote end-to-end speed. Needs the adapter's 'timestamp-query' feature.

/** Total GPU time of one kernel (by its name) over the profiled work. */
export interface KernelTime {
  kernel: string;
  dispatches: number;
  ms: number;
}

/** Queries per set: 2 per dispatch. The runtime submits when a set is full. */
const CAPACITY = 2048;

export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  /** Kernel names of the dispatches recorded into the current set, in order. */
  private names: string[] = [];
  /** Resolved into by the encoder not yet submitted. */
  private unsubmitted: { readback: GPUBuffer; names: string[] } | null = null;
  private readonly pending: Promise<void>[] = [];
  private readonly totals = new Map<string, KernelTime>();

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: CAPACITY, label: 'profiler' });
    this.resolve = device.createBuffer({ size: CAPACITY * 8, usage: 0x200 /* QUERY_RESOLVE */ | 0x04 /* COPY_SRC */, label: 'profiler resolve' });
  }

  get full(): boolean {
    return this.names.length * 2 >= CAPACITY;
  }

  /** The timestamp writes of the next dispatch's pass. */
  next(kernel: string): GPUComputePassTimestampWrites {
    const i = this.names.length;
    this.names.push(kernel);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Before the submit: resolves this set's timestamps into a read-back buffer. */
  record(encoder: GPUCommandEncoder): void {
    const n = this.names.length;
    if (n === 0) return;
    const readback = this.device.createBuffer({ size: n * 16, usage: 0x01 /* MAP_READ */ | 0x08 /* COPY_DST */, label: 'profiler read-back' });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolve, 0);
    encoder.copyBufferToBuffer(this.resolve, 0, readback, 0, n * 16);
    this.unsubmitted = { readback, names: this.names };
    this.names = [];
  }

  /** After the submit: reads the timestamps back (a buffer may not be mapped while a submit uses it). */
  submitted(): void {
    if (!this.unsubmitted) return;
    const { readback, names } = this.unsubmitted;
    this.unsubmitted = null;
    this.pending.push(
      (async () => {
        await readback.mapAsync(1 /* READ */);
        const t = new BigInt64Array(readback.getMappedRange().slice(0));
        readback.destroy();
        names.forEach((kernel, i) => {
          const entry = this.totals.get(kernel) ?? { kernel, dispatches: 0, ms: 0 };
          entry.dispatches++;
          entry.ms += Number(t[2 * i + 1]! - t[2 * i]!) / 1e6;
          this.totals.set(kernel, entry);
        });
      })(),
    );
  }

  /** Per kernel, the most time first (call after the profiled work has been submitted). */
  async report(): Promise<KernelTime[]> {
    await Promise.all(this.pending);
    this.querySet.destroy();
    this.resolve.destroy();
    return [...this.totals.values()].sort((a, b) => b.ms - a.ms);
  }
}
