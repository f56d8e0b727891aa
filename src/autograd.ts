// Autograd: every op is defined with its backward rule; backward() = topological sort + reverse walk.
//
// An op is an OpDef { name, forward, backward }. `backward` is a required member whose return type has
// one slot per input, so an op without a backward rule (or one that forgets an input) does not compile.
// Slots are null for inputs that have no gradient (integer ids) or did not ask for one (ctx.needsGrad).

import { Tensor, describe } from './tensor.js';
import { accumulate_, add, clone, full } from './ops/elementwise.js';

/** One gradient (or null) per input, in input order. */
export type Grads<A extends readonly Tensor[]> = { [K in keyof A]: Tensor | null };

/** What a backward rule gets besides dL/dout. */
export interface OpContext<A extends readonly Tensor[], O> {
  inputs: A;
  options: O;
  /** The forward output. */
  out: Tensor;
  /** Tensors forward() passed to save(), in order (e.g. layerNorm's mean and rstd). */
  saved: readonly Tensor[];
  /** needsGrad[i]: whether input i needs a gradient; skip the work for the others. */
  needsGrad: readonly boolean[];
}

export interface OpDef<A extends readonly Tensor[], O> {
  name: string;
  /** Runs the forward kernels. `save` keeps extra tensors for backward (freed after it). */
  forward(inputs: A, options: O, save: (...t: Tensor[]) => void): Tensor;
  /** dL/dinputs from dL/dout. Runs under noGrad. May return `grad` itself or the same tensor twice. */
  backward(grad: Tensor, ctx: OpContext<A, O>): Grads<A>;
}

/** The autograd node stored on an op's output. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  apply(grad: Tensor): readonly (Tensor | null)[];
  /** Frees saved tensors; a second backward through this node then fails clearly. */
  release(): void;
  released: boolean;
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Like torch.set_grad_enabled: for async code that cannot use noGrad(fn). Returns the previous value. */
export function setGradEnabled(enabled: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = enabled;
  return prev;
}

/** Runs fn without recording the graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = setGradEnabled(false);
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Turns an OpDef into a function (inputs, options) => output that records itself for backward. */
export function defineOp<A extends readonly Tensor[], O = undefined>(def: OpDef<A, O>): (inputs: A, options: O) => Tensor {
  return (inputs, options) => {
    const needsGrad = inputs.map((t) => gradEnabled && t.requiresGrad);
    const saved: Tensor[] = [];
    const out = def.forward(inputs, options, (...t) => saved.push(...t));
    if (!needsGrad.some(Boolean)) {
      for (const t of saved) t.dispose();
      return out;
    }
    out.requiresGrad = true;
    const ctx: OpContext<A, O> = { inputs, options, out, saved, needsGrad };
    const fn: GradFn = {
      name: def.name,
      inputs,
      released: false,
      apply: (grad) => def.backward(grad, ctx) as readonly (Tensor | null)[],
      release() {
        for (const t of saved) t.dispose();
        fn.released = true;
      },
    };
    out.gradFn = fn;
    return out;
  };
}

/** Tensors that require grad, in an order where every tensor comes after all tensors it was computed from. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  // Iterative DFS (a 48-layer model's graph is deeper than the JS stack likes).
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const inputs = top[0].gradFn?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++]!;
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order;
}

/**
 * dL/dleaf for every leaf with requiresGrad that `root` depends on, accumulated into leaf.grad.
 * `gradient` is dL/droot (default 1 for a one-element root). Intermediate gradients are freed as soon
 * as they are used, and each node's saved tensors right after its backward.
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(`backward(): the tensor ${describe(root)} does not require grad (no input had requiresGrad, or it was made under noGrad)`);
  }
  if (gradient && gradient.shape.join() !== root.shape.join()) {
    throw new Error(`backward(): gradient shape [${gradient.shape}] does not match the tensor's shape [${root.shape}]`);
  }
  if (!gradient && root.size !== 1) {
    throw new Error(`backward(): a gradient can be implied only for a one-element tensor; pass one of shape [${root.shape}]`);
  }
  const order = topologicalOrder(root);
  noGrad(() => {
    // Gradients may be shared between slots (add's backward returns `grad` twice), so they are refcounted.
    const refs = new Map<Tensor, number>();
    const hold = (t: Tensor): void => void refs.set(t, (refs.get(t) ?? 0) + 1);
    const drop = (t: Tensor): void => {
      const n = refs.get(t)! - 1;
      if (n > 0) refs.set(t, n);
      else {
        refs.delete(t);
        if (t !== gradient) t.dispose();
      }
    };
    const grads = new Map<Tensor, Tensor>();
    const seed = gradient ?? full(root.shape, 1);
    hold(seed);
    grads.set(root, seed);

    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const fn = t.gradFn;
      if (!fn) {
        // A leaf: accumulate into .grad, which lives as long as the leaf.
        if (t.grad) {
          accumulate_(t.grad, g);
          drop(g);
        } else if (refs.get(g) === 1 && g !== gradient) {
          refs.delete(g);
          g.untrack();
          t.grad = g;
        } else {
          t.grad = clone(g);
          t.grad.untrack();
          drop(g);
        }
        continue;
      }
      if (fn.released) {
        throw new Error(`backward(): ${fn.name}'s saved tensors were already freed by an earlier backward(); run the forward pass again`);
      }
      let inputGrads: readonly (Tensor | null)[];
      try {
        inputGrads = fn.apply(g);
      } catch (e) {
        if (e instanceof Error && e.message.includes('disposed tensor')) {
          throw new Error(
            `backward() through ${fn.name}: a tensor it saved was freed. Run forward and backward inside the same tidy() scope.\n${e.message}`,
          );
        }
        throw e;
      }
      fn.release();
      for (const gi of inputGrads) if (gi) hold(gi);
      fn.inputs.forEach((input, j) => {
        const gi = inputGrads[j];
        if (!gi) return;
        if (!input.requiresGrad) return drop(gi);
        if (gi.shape.join() !== input.shape.join()) {
          throw new Error(`backward() through ${fn.name}: gradient [${gi.shape}] does not match input ${j} [${input.shape}]`);
        }
        const prev = grads.get(input);
        if (!prev) return void grads.set(input, gi);
        const sum = add(prev, gi);
        hold(sum);
        drop(prev);
        drop(gi);
        grads.set(input, sum);
      });
      drop(g);
    }
  });
}

/** Frees the .grad of each tensor (PyTorch's zero_grad(set_to_none=True)). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
