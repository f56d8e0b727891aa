// The command line: `demo` (the README's main job) trains and reports a falling loss; `info` names the adapter.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mlpDemo } from '../src/cli/demo.js';
import { info } from '../src/cli/info.js';
import { useGpu } from './helpers.js';

useGpu();

function captureStdout(): { text: () => string } {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  return { text: () => out };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('cli', () => {
  it('demo --mlp trains the MLP: the printed loss falls by more than 10x', async () => {
    const out = captureStdout();
    await mlpDemo(['--steps', '100']);
    const losses = [...out.text().matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
    expect(losses.length).toBe(3); // steps 1, 50, 100
    expect(losses[2]! * 10).toBeLessThan(losses[0]!);
    expect(out.text()).toMatch(/100 steps in .* s/);
  });

  it('demo --mlp rejects a bad --steps', async () => {
    await expect(mlpDemo(['--steps', 'many'])).rejects.toThrow(/--steps takes a positive integer/);
  });

  it('info prints the adapter and its limits', async () => {
    const out = captureStdout();
    await info();
    expect(out.text()).toMatch(/^adapter: +\S/m);
    expect(out.text()).toMatch(/max storage binding/);
  });
});
