// Seeded randomness for the library: the global generator (manualSeed, nextSeed for dropout) and rand/randn tensors made on the CPU.
//
// Everything is deterministic: the same manualSeed (or the same `seed` option) gives the same numbers on
// every run and platform. Like PyTorch, the global generator starts from a fixed default seed.

import { noteSeed } from './gpu/runtime.js';
import { numel, tensor, type Shape, type Tensor } from './tensor.js';

/** The global generator's seed until manualSeed() is called (PyTorch's default CPU seed, for familiarity). */
export const DEFAULT_SEED = 67280421310721;

/**
 * xoshiro128** (Blackman & Vigna): 128 bits of state, period 2^128 - 1, fast with 32-bit integer math.
 * The state is filled from the seed by splitmix-style hashing, so nearby seeds give unrelated streams.
 */
/** A generator's state as plain JSON. */
export interface GeneratorState {
  s: number[];
  spare: number | null;
}

export class Generator {
  private readonly s = new Uint32Array(4);
  /** The second value of the last Box-Muller pair, handed out by the next normal(). */
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Generator: seed must be a non-negative safe integer, got ${seed}`);
    // Both 32-bit halves of the seed feed a Weyl sequence hashed by murmur3's finaliser.
    let w = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x85ebca6b);
    for (let i = 0; i < 4; i++) {
      w = (w + 0x9e3779b9) >>> 0;
      let z = w;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = z ^ (z >>> 16);
    }
    // The all-zero state is the one state xoshiro cannot leave.
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** The full state (4 words + the spare normal), to save in a checkpoint. */
  getState(): GeneratorState {
    return { s: Array.from(this.s), spare: this.spare };
  }

  /** Restores a state from getState(): the generator continues exactly where it was. */
  setState(state: GeneratorState): void {
    if (!Array.isArray(state.s) || state.s.length !== 4 || state.s.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new Error('Generator.setState: expected { s: four 32-bit unsigned integers, spare }');
    }
    this.s.set(state.s);
    this.spare = state.spare;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 2 ** 26 + lo) / 2 ** 53;
  }

  /** A standard normal sample (Box-Muller; each pair of uniforms gives two samples). */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    // 1 - next() is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

let global = new Generator(DEFAULT_SEED);

/** Reseeds the global generator (torch.manual_seed): later nextSeed()/rand()/randn() calls repeat exactly. */
export function manualSeed(seed: number): void {
  global = new Generator(seed);
}

/** The global generator's state (torch.get_rng_state), e.g. for a training checkpoint. */
export function getRngState(): GeneratorState {
  return global.getState();
}

/** Restores the global generator (torch.set_rng_state). */
export function setRngState(state: GeneratorState): void {
  global.setState(state);
}

/** A 32-bit seed drawn from the global generator, e.g. one per dropout call. */
export function nextSeed(): number {
  const seed = global.nextU32();
  noteSeed(seed);
  return seed;
}

export interface RandomOptions {
  /** Use a private generator seeded with this instead of the global one (which is then not advanced). */
  seed?: number;
  requiresGrad?: boolean;
}

function generatorFor(options: RandomOptions): Generator {
  return options.seed === undefined ? global : new Generator(options.seed);
}

function make(shape: Shape, options: RandomOptions, sample: (g: Generator) => number): Tensor {
  const g = generatorFor(options);
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = sample(g);
  return tensor(data, shape, { requiresGrad: options.requiresGrad ?? false });
}

/** Uniform samples in [low, high) (torch.rand / nn.init.uniform_). */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const { low = 0, high = 1 } = options;
  return make(shape, options, (g) => low + (high - low) * g.next());
}

/** Normal samples with the given mean and standard deviation (torch.randn / nn.init.normal_, GPT-2 uses std 0.02). */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const { mean = 0, std = 1 } = options;
  return make(shape, options, (g) => mean + std * g.normal());
}
