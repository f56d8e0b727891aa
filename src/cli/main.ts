#!/usr/bin/env node
// The `webgpu-lm` command: `info` (the WebGPU adapter) and `demo` (train a tiny MLP); the GPT-2 workflow adds train/generate/eval.

import { demo } from './demo.js';
import { info } from './info.js';

const HELP = `webgpu-lm — train and sample language models on WebGPU

usage: webgpu-lm <command> [options]

commands:
  info                 show the WebGPU adapter, its features and limits
  demo [--steps N]     train a tiny MLP on the GPU and print its loss falling (default 300 steps)

environment:
  WEBGPU_LM_BACKEND    Dawn backend: vulkan | metal | d3d12 | ...
  WEBGPU_LM_ADAPTER    use the adapter whose name contains this text
  WEBGPU_LM_VALIDATE   1 = check every kernel launch separately (slow; names the failing kernel)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'info':
      await info();
      return 0;
    case 'demo':
      await demo(rest);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`webgpu-lm: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
