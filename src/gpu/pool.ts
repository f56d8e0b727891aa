// Size-bucketed GPU buffer pool: freed buffers return here and are handed out again, never left to the GC.

/** A pooled storage buffer. `id` never repeats, so it can key caches (bind groups). */
export interface GpuBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
  /** Bytes allocated (the bucket), >= what was asked for. */
  readonly size: number;
  /** Submit epoch of the last command that used it; a CPU write must not overtake it (see Runtime.write). */
  lastUse: number;
  /** Times it went back to the pool: whoever saw another count no longer owns it (a captured step checks this). */
  releases: number;
}

// Every pooled buffer can be a kernel input/output, a copy source (read-back) and a copy target (upload).
const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */;
const MIN_BYTES = 256;

/** Rounds up to one of 8 sizes per power of two (waste <= 12.5 %), multiples of 256 bytes. */
export function bucketSize(bytes: number): number {
  if (bytes <= MIN_BYTES) return MIN_BYTES;
  const octave = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(MIN_BYTES, octave / 8);
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  // Per size, free buffers sorted by descending id; acquire() takes the lowest id. Which buffer an allocation
  // gets then depends only on the set of free buffers, not on the order they were freed in, so a repeated
  // training step gets the same buffers in the same roles and its cached bind groups hit again.
  private free = new Map<number, GpuBuffer[]>();
  private nextId = 1;
  /** Buffers handed out and not yet released. */
  live = 0;
  liveBytes = 0;
  pooledBytes = 0;
  /** Largest liveBytes + pooledBytes seen: the GPU memory this process really used. */
  peakBytes = 0;

  constructor(private device: GPUDevice, private maxBufferSize: number) {}

  acquire(bytes: number, label: string): GpuBuffer {
    const size = bucketSize(bytes);
    if (size > this.maxBufferSize) {
      throw new RangeError(
        `webgpu-lm: ${label} needs a ${formatBytes(bytes)} buffer, over this adapter's maxBufferSize of ${formatBytes(this.maxBufferSize)}.`,
      );
    }
    let buf = this.free.get(size)?.pop();
    if (buf) {
      this.pooledBytes -= size;
    } else {
      // Out-of-memory shows up as a GPUOutOfMemoryError on the device; the runtime's error scope reports it.
      buf = { id: this.nextId++, buffer: this.device.createBuffer({ size, usage: USAGE, label }), size, lastUse: -1, releases: 0 };
    }
    this.live++;
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes + this.pooledBytes);
    this.tracking?.add(buf);
    return buf;
  }

  release(buf: GpuBuffer): void {
    buf.releases++;
    this.tracking?.delete(buf);
    this.live--;
    this.liveBytes -= buf.size;
    this.pooledBytes += buf.size;
    let list = this.free.get(buf.size);
    if (!list) this.free.set(buf.size, (list = []));
    let i = list.length;
    while (i > 0 && list[i - 1]!.id < buf.id) i--;
    list.splice(i, 0, buf);
  }

  /** While a step is captured (gpu/graph.ts): the buffers acquired and not yet released. */
  tracking: Set<GpuBuffer> | null = null;

  /** Takes a free buffer out of the pool for a new owner (a captured step); false if it is not free. */
  take(buf: GpuBuffer): boolean {
    const list = this.free.get(buf.size);
    const i = list?.indexOf(buf) ?? -1;
    if (i < 0) return false;
    list!.splice(i, 1);
    this.pooledBytes -= buf.size;
    this.live++;
    this.liveBytes += buf.size;
    return true;
  }

  /** Starts peak tracking afresh from what is held now. */
  resetPeak(): void {
    this.peakBytes = this.liveBytes + this.pooledBytes;
  }

  /** Destroys every pooled (unused) buffer, giving the memory back to the driver. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.buffer.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
