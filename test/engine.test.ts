// The engine itself: tensors, read-back, scopes and leaks, autograd mechanics, batching and caching, and error surfacing.
import { describe, expect, it, vi } from 'vitest';
import * as w from '../src/index.js';
import { useGpu } from './helpers.js';

useGpu();

describe('tensors', () => {
  it('round-trips f32, i32 and 0-d data', async () => {
    expect(Array.from(await w.tensor([[1.5, -2], [3, 4]]).toArray())).toEqual([1.5, -2, 3, 4]);
    const i = w.tensor(Int32Array.from([-3, 0, 2 ** 31 - 1]), [3]);
    expect(i.dtype).toBe('i32');
    expect(Array.from(await i.toArray())).toEqual([-3, 0, 2 ** 31 - 1]);
    const s = w.tensor(2.5);
    expect(s.shape).toEqual([]);
    expect(await s.item()).toBe(2.5);
    expect(Array.from(await w.zeros([3, 5]).toArray())).toEqual(new Array(15).fill(0));
    const e = w.zeros([0, 3]);
    expect(e.size).toBe(0);
    expect((await e.toArray()).length).toBe(0);
  });

  it('rejects bad data with clear messages', async () => {
    expect(() => w.tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2,2\]/);
    expect(() => w.tensor([[1, 2], [3]])).toThrow(/ragged/);
    expect(() => w.tensor([1.5], [1], { dtype: 'i32' })).toThrow(/not a 32-bit integer/);
    expect(() => w.zeros([2, -1])).toThrow(/non-negative integers/);
    await expect(w.tensor([1, 2]).item()).rejects.toThrow(/2 elements/);
  });

  it('a disposed tensor cannot be used, and says why', async () => {
    const a = w.tensor([1, 2, 3]);
    a.dispose();
    a.dispose();
    expect(() => w.exp(a)).toThrow(/a disposed tensor was used \(\[3\] f32\)/);
    await expect(a.toArray()).rejects.toThrow(/disposed/);
    const b = w.tensor([1]);
    b[Symbol.dispose]();
    expect(b.isDisposed).toBe(true);
  });

  it('detach() shares memory: the buffer lives until the last holder is disposed', async () => {
    const base = w.liveBuffers();
    const a = w.tensor([1, 2, 3], undefined, { requiresGrad: true });
    const d = a.detach();
    expect(d.requiresGrad).toBe(false);
    expect(w.liveBuffers()).toBe(base + 1);
    a.dispose();
    expect(Array.from(await d.toArray())).toEqual([1, 2, 3]);
    d.dispose();
    expect(w.liveBuffers()).toBe(base);
  });
});

describe('scopes', () => {
  it('tidy frees every intermediate and keeps what is returned, through nested scopes', async () => {
    const base = w.liveBuffers();
    const x = w.tensor([1, 2, 3]);
    const out = w.tidy(() => {
      const y = w.exp(x);
      const inner = w.tidy(() => {
        const a = w.mul(y, 2);
        const b = w.add(a, 1);
        return { b, list: [w.neg(b)] };
      });
      expect(w.liveBuffers()).toBe(base + 4); // x, y, b, -b
      return w.add(inner.b, inner.list[0]!);
    });
    expect(w.liveBuffers()).toBe(base + 2); // x and out
    expect(Array.from(await out.toArray())).toEqual([0, 0, 0]);
    // A tensor made outside the scope and returned from it stays unscoped.
    const same = w.tidy(() => x);
    w.tidy(() => same);
    expect(x.isDisposed).toBe(false);
    out.dispose();
    x.dispose();
    expect(w.liveBuffers()).toBe(base);
  });

  it('frees everything when the scope throws; keep() exempts a tensor', () => {
    const base = w.liveBuffers();
    let kept: w.Tensor | null = null;
    expect(() =>
      w.tidy(() => {
        w.zeros([10]);
        kept = w.keep(w.zeros([4]));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(w.liveBuffers()).toBe(base + 1);
    kept!.dispose();
    expect(w.liveBuffers()).toBe(base);
  });

  it('refuses an async function', () => {
    expect(() => w.tidy(async () => 1)).toThrow(/returned a Promise/);
  });
});

describe('autograd', () => {
  it('accumulates into .grad across backward calls until zeroGrad', async () => {
    const x = w.tensor([1, 2, 3], undefined, { requiresGrad: true });
    w.tidy(() => w.sum(w.mul(x, x)).backward());
    expect(Array.from(await x.grad!.toArray())).toEqual([2, 4, 6]);
    w.tidy(() => w.sum(w.mul(x, 3)).backward());
    expect(Array.from(await x.grad!.toArray())).toEqual([5, 7, 9]);
    w.zeroGrad([x]);
    expect(x.grad).toBeNull();
    x.dispose();
  });

  it('handles a tensor used many times (diamond) and a deep chain', async () => {
    const x = w.tensor([0.5, -1], undefined, { requiresGrad: true });
    w.tidy(() => {
      const a = w.mul(x, x); // x^2
      const b = w.mul(a, x); // x^3
      w.sum(w.add(w.add(a, b), x)).backward(); // d/dx = 2x + 3x^2 + 1
    });
    expect(Array.from(await x.grad!.toArray())).toEqual([2 * 0.5 + 3 * 0.25 + 1, -2 + 3 + 1]);
    w.zeroGrad([x]);
    w.tidy(() => {
      let y = x;
      for (let i = 0; i < 2000; i++) y = w.add(y, 0.001);
      w.sum(y).backward();
    });
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 1]);
    x.dispose();
  });

  it('noGrad records nothing; misuse of backward fails clearly', () => {
    const x = w.tensor([1, 2], undefined, { requiresGrad: true });
    w.tidy(() => {
      const y = w.noGrad(() => w.mul(x, 2));
      expect(y.requiresGrad).toBe(false);
      expect(y.gradFn).toBeNull();
      expect(() => y.backward()).toThrow(/does not require grad/);
      expect(() => w.mul(x, 2).backward()).toThrow(/only for a one-element tensor/);
      const s = w.sum(w.exp(x));
      s.backward();
      expect(() => s.backward()).toThrow(/already freed by an earlier backward/);
    });
    x.dispose();
  });

  it('backward outside the forward scope explains the scope rule', () => {
    const x = w.tensor([1, 2], undefined, { requiresGrad: true });
    const y = w.tidy(() => w.sum(w.mul(w.exp(x), x)));
    expect(() => y.backward()).toThrow(/same tidy\(\) scope/);
    y.dispose();
    x.dispose();
  });
});

describe('execution', () => {
  it('records a whole step into one submit, and reuses pipelines and bind groups on the next step', async () => {
    const rt = w.runtime();
    const x = w.tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const step = (): w.Tensor =>
      w.tidy(() => {
        const loss = w.sum(w.mul(w.tanh(w.mul(x, 0.5)), w.add(x, 1)));
        loss.backward();
        return loss;
      });
    // Warm up: the first step compiles pipelines, the second settles which pooled buffer plays which role.
    for (let i = 0; i < 2; i++) {
      const l = step();
      await l.toArray();
      l.dispose();
    }
    await w.sync();
    const before = { ...rt.stats };
    const loss = step();
    expect(rt.stats.submits - before.submits).toBe(0);
    expect(rt.stats.dispatches - before.dispatches).toBeGreaterThan(5);
    expect(rt.stats.pipelines - before.pipelines).toBe(0);
    expect(rt.stats.bindGroups - before.bindGroups).toBe(0);
    await loss.toArray();
    expect(rt.stats.submits - before.submits).toBe(1);
    loss.dispose();
    x.dispose();
  });
});

describe('profiling', () => {
  it('times every dispatch on the GPU by kernel, and leaves results unchanged', async () => {
    const rt = w.runtime();
    const a = w.tensor(Array.from({ length: 64 * 48 }, (_, i) => Math.sin(i)), [64, 48]);
    const b = w.tensor(Array.from({ length: 48 * 40 }, (_, i) => Math.cos(i)), [48, 40]);
    const unprofiled = w.tidy(() => w.tanh(w.matmul(a, b)));
    const plain = await unprofiled.toArray();
    unprofiled.dispose();
    const before = rt.stats.dispatches;
    rt.startProfile();
    const c = w.tidy(() => w.tanh(w.matmul(a, b)));
    const profiled = await c.toArray();
    const report = await rt.stopProfile();
    expect(profiled).toEqual(plain); // the same kernels, one pass each
    const dispatched = rt.stats.dispatches - before;
    expect(report.reduce((n, k) => n + k.dispatches, 0)).toBe(dispatched);
    expect(report.map((k) => k.kernel).some((name) => name.startsWith('matmul'))).toBe(true);
    for (const k of report) expect(k.ms).toBeGreaterThanOrEqual(0);
    expect(report.reduce((t, k) => t + k.ms, 0)).toBeGreaterThan(0);
    await expect(rt.stopProfile()).rejects.toThrow(/without startProfile/);
    c.dispose();
    a.dispose();
    b.dispose();
  });
});

describe('uploads', () => {
  it('an upload into a buffer the unsubmitted encoder still uses neither submits nor overtakes it', async () => {
    const rt = w.runtime();
    const x = w.tensor([1, 2, 3]);
    await w.sync();
    const before = rt.stats.submits;
    const y = w.mul(x, 3); // recorded, not submitted: reads x
    const z = w.add(y, 1);
    y.dispose(); // y's buffer returns to the pool while the encoder still writes it
    const fresh = w.tensor([7, 8, 9]); // the pool hands y's buffer out again: the data is staged and copied in order
    expect(rt.stats.submits).toBe(before);
    expect(Array.from(await z.toArray())).toEqual([4, 7, 10]);
    expect(Array.from(await fresh.toArray())).toEqual([7, 8, 9]);
    for (const t of [x, z, fresh]) t.dispose();
  });
});

describe('errors from the GPU', () => {
  it('a kernel that fails to compile is named in the error', async () => {
    const bad = new w.Kernel('broken_kernel', `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = undefined_symbol; }`);
    const t = w.zeros([1]);
    w.runtime().dispatch(bad, { buffers: [t.range], grid: [1], label: 'broken_kernel out[1]' });
    await expect(w.sync()).rejects.toThrow(/kernel broken_kernel failed to compile/);
    t.dispose();
  });

  it('a validation error at submit names the kernel and the shapes it was launched with, in both modes', async () => {
    const rt = w.runtime();
    const k = new w.Kernel('needs_1k', `
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>, 64>;
@compute @workgroup_size(1) fn main() { out[0] = vec4<f32>(1.0); }`);
    const t = w.zeros([1]);
    rt.dispatch(k, { buffers: [t.range], grid: [1], label: 'needs_1k out[1]' });
    await expect(w.sync()).rejects.toThrow(/ComputePipeline "needs_1k"[\s\S]*needs_1k was launched as: needs_1k out\[1\]/);
    rt.gpu.validate = true;
    try {
      rt.dispatch(k, { buffers: [t.range], grid: [1], label: 'needs_1k out[1]' });
      await expect(w.sync()).rejects.toThrow(/GPU error in needs_1k out\[1\]: .*too small/);
    } finally {
      rt.gpu.validate = false;
    }
    t.dispose();
  });

  it('a binding over maxStorageBufferBindingSize is refused before any GPU work, naming the limit', () => {
    const rt = w.runtime();
    const k = new w.Kernel('big', `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = 1.0; }`);
    const t = w.zeros([1]);
    const huge = { ...t.range, size: rt.limits.maxStorageBufferBindingSize + 4 };
    expect(() => rt.dispatch(k, { buffers: [huge], grid: [1], label: 'big out[huge]' })).toThrow(/big out\[huge\].*maxStorageBufferBindingSize/);
    expect(() => w.zeros([rt.limits.maxBufferSize])).toThrow(/over this adapter's maxBufferSize/);
    t.dispose();
  });

  it('an unknown adapter name fails with what to install', async () => {
    vi.resetModules();
    const fresh = await import('../src/gpu/device.js');
    await expect(fresh.getDevice({ adapter: 'no-such-adapter-xyz' })).rejects.toThrow(/no WebGPU adapter matches adapter "no-such-adapter-xyz"[\s\S]*install-cpu-webgpu\.sh/);
  });

  it('device loss turns every later op into a clear DeviceLostError', async () => {
    vi.resetModules();
    const fresh = await import('../src/index.js');
    const rt = await fresh.init();
    const t = fresh.tensor([1, 2]);
    rt.device.destroy(); // not via shutdown(): from the library's point of view the device was lost
    await rt.device.lost;
    expect(() => fresh.exp(t)).toThrow(/GPU device was lost[\s\S]*--resume/);
    await expect(fresh.getDevice()).rejects.toBeInstanceOf(fresh.DeviceLostError);
  });
});
