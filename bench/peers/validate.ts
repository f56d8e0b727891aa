// Checks a peer before it is timed: its GPT-2 step's losses against our framework on the same spec, its matmul against float64.

import { AdamW, GradScaler, autocast, capture, fromFloat32, gpt2FromStateDict, sync, tensor, tidy, type StepGraph, type Tensor } from '../../src/index.js';
import { checkProduct, matmulOperands } from '../kernels.js';
import { checkGpt2Spec, gpt2WeightShapes } from './gpt2_spec.js';
import type { Gpt2StepSpec, Peer, TrainStepContender } from './types.js';

/** Steps read back when validating: the first loss (the initial weights) and the fourth (after three Adam updates). */
export const CHECKED_STEPS = 4;
/** Relative tolerances on the first and the last checked loss. */
export const LOSS_RTOL = { first: 1e-5, last: 1e-3 };

/**
 * Our framework on a spec (the reference): GPT2LMHeadModel with the spec's weights, dropout 0, AdamW with weight decay 0.
 * With `fp16`, mixed precision as `train --fp16` runs it: the forward under autocast, the loss scaled by a GradScaler.
 */
/**
 * Our GPT-2 step as the trainer runs it: the first step eagerly, the second captured, the rest replayed
 * (gpu/graph.ts); with `eager` every step runs its JavaScript.
 */
export function oursGpt2TrainStep(spec: Gpt2StepSpec, fp16 = false, eager = false): TrainStepContender {
  checkGpt2Spec(spec);
  const { n_layer, n_embd, n_head, n_positions, vocab_size, B, T } = spec;
  const host = new Map(gpt2WeightShapes(spec).map(([name, shape]) => [name, fromFloat32(spec.weights.get(name)!, shape)]));
  const model = gpt2FromStateDict({ n_layer, n_embd, n_head, n_positions, vocab_size, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, host);
  const opt = new AdamW(model.parameters(), { lr: spec.lr, betas: spec.betas, eps: spec.eps, weightDecay: 0 });
  const ids = tensor(spec.ids, [B, T], { dtype: 'i32' });
  const scaler = fp16 ? new GradScaler() : null;
  const record = (): Tensor => {
    const loss = tidy(() => {
      const l = autocast(() => model.forward({ inputIds: ids, labels: ids }).loss!, fp16);
      (scaler ? scaler.scale(l) : l).backward();
      return l.detach();
    });
    if (scaler) {
      scaler.step(opt);
      scaler.update();
    } else {
      opt.step();
    }
    model.zeroGrad();
    return loss;
  };
  let graph: StepGraph<Tensor> | null = null;
  let last: Tensor | null = null;
  return {
    step() {
      if (graph) {
        graph.replay();
      } else if (last && !eager) {
        last.dispose();
        graph = capture(record);
        last = graph.outputs;
      } else {
        last?.dispose();
        last = record();
      }
    },
    lastLoss() {
      if (!last) throw new Error('ours: no step has run');
      return last.item();
    },
    drain: sync,
    dispose() {
      if (graph) graph.dispose();
      else last?.dispose();
      ids.dispose();
      scaler?.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

/** Runs `steps` steps of `c`, reading each loss back. */
export async function stepLosses(c: TrainStepContender, steps = CHECKED_STEPS): Promise<number[]> {
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    c.step();
    losses.push(await c.lastLoss());
  }
  return losses;
}

/** Our losses on `spec` for CHECKED_STEPS steps: the reference for validatePeerStep. */
export async function referenceLosses(spec: Gpt2StepSpec): Promise<number[]> {
  const ours = oursGpt2TrainStep(spec);
  try {
    return await stepLosses(ours);
  } finally {
    ours.dispose();
  }
}

/** |got - want| / |want| */
export const relErr = (got: number, want: number): number => Math.abs(got - want) / Math.abs(want);

/**
 * Runs CHECKED_STEPS steps of a peer's contender (fresh from gpt2TrainStep, so its first step is the spec's) and
 * compares the losses with `want` (referenceLosses): the first within LOSS_RTOL.first, the last within LOSS_RTOL.last.
 * The contender stays usable (for timing) afterwards. error is null when it agrees.
 */
export async function validatePeerStep(c: TrainStepContender, want: number[]): Promise<{ losses: number[]; error: string | null }> {
  const losses = await stepLosses(c, want.length);
  const first = relErr(losses[0]!, want[0]!);
  const last = relErr(losses.at(-1)!, want.at(-1)!);
  const ok = first <= LOSS_RTOL.first && last <= LOSS_RTOL.last;
  const error = ok ? null : `losses ${losses.join(', ')} differ from ours ${want.join(', ')} (relative ${first.toExponential(1)} first, ${last.toExponential(1)} last)`;
  return { losses, error };
}

/** A peer's matmul (67×129×95 by default: no dimension a multiple of a tile) against a float64 product; null when right. */
export async function validatePeerMatmul(peer: Peer, M = 67, K = 129, N = 95): Promise<string | null> {
  const s = { name: `${M}×${K}×${N}`, M, K, N };
  const { a, b } = matmulOperands(s, 7);
  const c = peer.matmulContender(M, K, N, a, b);
  try {
    return checkProduct(await c.validate(), a, b, s);
  } finally {
    c.dispose();
  }
}
