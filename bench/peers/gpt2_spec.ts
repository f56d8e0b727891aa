// The GPT-2 training step shared by the peers: parameter names and shapes, spec checks, constants, and a seeded random spec.

import type { Gpt2StepSpec } from './types.js';
import { mulberry32 } from '../../test/reference/random.js';

/** GPT-2's layer_norm_epsilon. */
export const LAYER_NORM_EPS = 1e-5;

type Sizes = Pick<Gpt2StepSpec, 'n_layer' | 'n_embd' | 'vocab_size' | 'n_positions'>;

/** Every trained parameter, in Hugging Face state-dict order, with its shape (C = n_embd, V = vocab_size, P = n_positions). */
export function gpt2WeightShapes({ n_layer, n_embd: C, vocab_size: V, n_positions: P }: Sizes): [string, number[]][] {
  const out: [string, number[]][] = [
    ['transformer.wte.weight', [V, C]],
    ['transformer.wpe.weight', [P, C]],
  ];
  for (let i = 0; i < n_layer; i++) {
    const h = `transformer.h.${i}.`;
    out.push(
      [`${h}ln_1.weight`, [C]],
      [`${h}ln_1.bias`, [C]],
      [`${h}attn.c_attn.weight`, [C, 3 * C]],
      [`${h}attn.c_attn.bias`, [3 * C]],
      [`${h}attn.c_proj.weight`, [C, C]],
      [`${h}attn.c_proj.bias`, [C]],
      [`${h}ln_2.weight`, [C]],
      [`${h}ln_2.bias`, [C]],
      [`${h}mlp.c_fc.weight`, [C, 4 * C]],
      [`${h}mlp.c_fc.bias`, [4 * C]],
      [`${h}mlp.c_proj.weight`, [4 * C, C]],
      [`${h}mlp.c_proj.bias`, [C]],
    );
  }
  out.push(['transformer.ln_f.weight', [C]], ['transformer.ln_f.bias', [C]]);
  return out;
}

/** Throws unless `spec` is a step every peer can run as specified: sizes, every weight present and sized, ids in range, Adam without decay. */
export function checkGpt2Spec(spec: Gpt2StepSpec): void {
  const { n_embd: C, n_head: NH, n_positions: P, vocab_size: V, B, T } = spec;
  if (C % NH !== 0) throw new Error(`GPT-2 step: n_embd ${C} is not divisible by n_head ${NH}`);
  if (!(T >= 2 && T <= P)) throw new Error(`GPT-2 step: T ${T} must be in [2, n_positions ${P}] (the shifted loss needs two positions)`);
  if (spec.ids.length !== B * T) throw new Error(`GPT-2 step: ${spec.ids.length} ids, expected B·T = ${B * T}`);
  if (!spec.ids.every((t) => t >= 0 && t < V)) throw new Error(`GPT-2 step: ids must be in [0, ${V})`);
  if ((spec.weightDecay ?? 0) !== 0) throw new Error(`GPT-2 step: weight decay ${spec.weightDecay} is not supported (Adam without decay only)`);
  for (const [name, shape] of gpt2WeightShapes(spec)) {
    const w = spec.weights.get(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!w) throw new Error(`GPT-2 step: missing weight ${name}`);
    if (w.length !== n) throw new Error(`GPT-2 step: ${name} has ${w.length} values, expected [${shape}] = ${n}`);
  }
}

/**
 * A random GPT-2 step from a seed: every weight normal with standard deviation `std` (layer-norm weights 1 + that, so
 * the blocks are not scaled towards zero), ids uniform in [0, vocab_size), Adam betas (0.9, 0.999), eps 1e-8, no decay.
 */
export function randomGpt2Spec(
  sizes: Omit<Gpt2StepSpec, 'weights' | 'ids' | 'lr' | 'betas' | 'eps' | 'weightDecay'>,
  { seed, std = 0.02, lr = 1e-3 }: { seed: number; std?: number; lr?: number },
): Gpt2StepSpec {
  const u = mulberry32(seed);
  // Box–Muller; 1 - u() is in (0, 1], so the log is finite.
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of gpt2WeightShapes(sizes)) {
    const w = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const one = /\.ln_(1|2|f)\.weight$/.test(name) ? 1 : 0;
    for (let i = 0; i < w.length; i++) w[i] = one + std * normal();
    weights.set(name, w);
  }
  const ids = Int32Array.from({ length: sizes.B * sizes.T }, () => Math.floor(u() * sizes.vocab_size));
  return { ...sizes, weights, ids, lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 };
}
