#!/usr/bin/env node
// The `webgpu-lm` command: train, generate, generate-texts, eval and vocab (GPT2-Chinese's workflow), fill (XLNet), info, demo, tune-matmul.

// Every command reads the matmul tiles tuned for this adapter from the file cache (ops/matmul_tiles_node.ts).
import '../ops/matmul_tiles_node.js';
import { UsageError } from './args.js';
import { demo } from './demo.js';
import { evaluate } from './eval.js';
import { fill } from './fill.js';
import { generateCommand, generateTextsCommand } from './generate.js';
import { info } from './info.js';
import { train } from './train.js';
import { tuneMatmulCommand } from './tune_matmul.js';
import { vocab } from './vocab.js';

const HELP = `webgpu-lm — train and sample language models on WebGPU

usage: webgpu-lm <command> [options]

commands:
  train                train a GPT-2 on a corpus (GPT2-Chinese train.py flags; --help for all)
                       --model xlnet: pretrain an XLNet (train_gpu.py flags; --model xlnet --help)
  generate             sample text from a prefix with a GPT-2 or an XLNet (generate.py flags)
  generate-texts       generate articles for a list of titles (generate_texts.py flags)
  eval                 perplexity of a model on a corpus (eval.py flags)
  fill                 fill each <mask> of --text with an XLNet ("春花秋<mask>何时了")
  vocab                build a vocab.txt from a corpus (make_vocab.py flags)
  info                 show the WebGPU adapter, its features and limits
  tune-matmul          race the matmul tile sizes on this adapter and cache the fastest
                       (--quick on a CPU adapter; used by every later run)
  demo [--steps N]     train a small GPT-2 on the bundled Song-ci poems, then write some
                       (--xlnet: pretrain an XLNet and fill blanks; --mlp: an MLP instead)

Every command takes --help. Flags are kebab-case; GPT2-Chinese's underscore spellings work too.

environment:
  WEBGPU_LM_BACKEND    Dawn backend: vulkan | metal | d3d12 | ...
  WEBGPU_LM_ADAPTER    use the adapter whose name contains this text
  WEBGPU_LM_VALIDATE   1 = check every kernel launch separately (slow; names the failing kernel)
  WEBGPU_LM_CACHE_DIR  where tuned matmul tiles are cached (default $XDG_CACHE_HOME/webgpu-lm or ~/.cache/webgpu-lm)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train':
      return train(rest);
    case 'generate':
      return generateCommand(rest);
    case 'generate-texts':
      return generateTextsCommand(rest);
    case 'eval':
      return evaluate(rest);
    case 'fill':
      return fill(rest);
    case 'vocab':
      return vocab(rest);
    case 'info':
      await info();
      return 0;
    case 'tune-matmul':
      return tuneMatmulCommand(rest);
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
    process.stderr.write(`webgpu-lm: ${e instanceof Error ? e.message : String(e)}\n`);
    // 2 for a bad command line (as argparse), 1 for everything else.
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
