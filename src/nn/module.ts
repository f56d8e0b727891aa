// Module: a tree of parameters and submodules, named by their fields as PyTorch/Hugging Face name them ("h.0.attn.c_attn.weight").

import { Tensor, empty, type Shape } from '../tensor.js';

const registered = new WeakSet<Tensor>();
let drawInit = true;

/**
 * Builds modules without drawing initial values: parameters are left uninitialised, for when a checkpoint
 * fills them right after (drawing 124M normals on the CPU only to overwrite them would cost seconds).
 */
export function withoutInit<T>(build: () => T): T {
  const prev = drawInit;
  drawInit = false;
  try {
    return build();
  } finally {
    drawInit = prev;
  }
}

/** A parameter's initial value: draw() normally, an uninitialised tensor inside withoutInit(). */
export function initial(shape: Shape, draw: () => Tensor): Tensor {
  return drawInit ? draw() : empty(shape, 'f32', 'parameter');
}

/** Marks a tensor as a parameter: it requires grad, lives until dispose() (outside any scope), and is found by namedParameters(). */
export function parameter(t: Tensor): Tensor {
  t.requiresGrad = true;
  t.untrack();
  registered.add(t);
  return t;
}

export function isParameter(t: unknown): t is Tensor {
  return t instanceof Tensor && registered.has(t);
}

export class Module {
  /** Training mode (dropout active). Set with train()/eval(). */
  training = true;

  /**
   * Every parameter with its dotted name, in field order; submodules and arrays of modules (ModuleList) recurse.
   * A tensor shared by two fields (tied weights) is listed once, under its first name, as in PyTorch.
   */
  namedParameters(prefix = '', seen = new Set<Tensor>()): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const visit = (name: string, v: unknown): void => {
      if (isParameter(v)) {
        if (!seen.has(v)) {
          seen.add(v);
          out.push([name, v]);
        }
      } else if (v instanceof Module) {
        out.push(...v.namedParameters(name, seen));
      } else if (Array.isArray(v)) {
        v.forEach((m, i) => visit(`${name}.${i}`, m));
      }
    };
    for (const [k, v] of Object.entries(this)) visit(prefix ? `${prefix}.${k}` : k, v);
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Sets training mode here and in every submodule. */
  train(mode = true): this {
    const visit = (v: unknown): void => {
      if (v instanceof Module) {
        v.training = mode;
        for (const x of Object.values(v)) visit(x);
      } else if (Array.isArray(v)) v.forEach(visit);
    };
    visit(this);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter's .grad. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees every parameter (and its grad). */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}
