// `webgpu-lm demo`: a small MLP learns y = sin(3x) on the GPU, printing its loss as it falls — the whole engine in one loop.

import { AdamW } from '../optim/adamw.js';
import { init } from '../gpu/runtime.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { mean } from '../ops/reduce.js';
import { mul, sub, tanh } from '../ops/elementwise.js';
import { manualSeed } from '../random.js';
import { tensor, tidy, type Tensor } from '../tensor.js';

/** 1 -> 64 -> 64 -> 1 with tanh: enough to fit three half-periods of a sine. */
class MLP extends Module {
  fc1 = new Linear(1, 64);
  fc2 = new Linear(64, 64);
  fc3 = new Linear(64, 1);

  forward(x: Tensor): Tensor {
    return this.fc3.forward(tanh(this.fc2.forward(tanh(this.fc1.forward(x)))));
  }
}

export async function demo(args: string[]): Promise<void> {
  const i = args.indexOf('--steps');
  const steps = i >= 0 ? Number(args[i + 1]) : 300;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`demo: --steps takes a positive integer, got ${args[i + 1]}`);
  const { gpu } = await init();
  manualSeed(0);

  const N = 256; // points in [-1, 1]
  const xs = Float32Array.from({ length: N }, (_, k) => -1 + (2 * k) / (N - 1));
  const x = tensor(xs, [N, 1]);
  const y = tensor(xs.map((v) => Math.sin(3 * v)), [N, 1]);
  const model = new MLP();
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  process.stdout.write(`adapter: ${gpu.name}\nMLP with ${model.numParameters()} parameters learns y = sin(3x) from ${N} points\n`);

  const start = performance.now();
  let first = NaN;
  let last = NaN;
  for (let step = 1; step <= steps; step++) {
    // One step: forward, loss, backward, update — recorded into one command encoder; every intermediate freed at the end.
    const loss = tidy(() => {
      const err = sub(model.forward(x), y);
      const l = mean(mul(err, err));
      l.backward();
      opt.step();
      return l;
    });
    model.zeroGrad();
    if (step === 1 || step % 50 === 0 || step === steps) {
      last = await loss.item(); // the only read-back: submits the recorded steps and waits
      if (step === 1) first = last;
      process.stdout.write(`step ${String(step).padStart(4)}  loss ${last.toFixed(6)}\n`);
    }
    loss.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  const pred = await tidy(() => model.forward(x)).toArray();
  process.stdout.write(`\n${steps} steps in ${seconds.toFixed(2)} s (${(steps / seconds).toFixed(0)} steps/s); loss fell ${(first / last).toFixed(0)}x\n`);
  process.stdout.write('     x   sin(3x)   model\n');
  for (const k of [0, 64, 128, 192, 255]) {
    process.stdout.write(`${xs[k]!.toFixed(2).padStart(6)}  ${Math.sin(3 * xs[k]!).toFixed(4).padStart(8)}  ${pred[k]!.toFixed(4).padStart(7)}\n`);
  }
  model.dispose();
  opt.dispose();
  x.dispose();
  y.dispose();
}
