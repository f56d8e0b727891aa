// Named GPT-2 configs: GPT2-Chinese's three (config/model_config*.json) and small ones sized for a CPU adapter.

import type { GPT2Config } from './gpt2.js';

type Preset = Partial<GPT2Config>;

/** GPT2-Chinese configs (n_ctx = n_positions; layer_norm_epsilon 1e-5; initializer_range 0.02). */
export const GPT2_PRESETS: Record<string, Preset> = {
  /** config/model_config.json: 12 layers, 768 wide, bert-base-chinese vocabulary (21128). */
  base: { n_layer: 12, n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 21128 },
  /** config/model_config_small.json, GPT2-Chinese's default: 10 layers, vocab_small (13317). */
  small: { n_layer: 10, n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 13317 },
  /** config/model_config_test.json: 1 layer, 128 wide, n_ctx 64. */
  test: { n_layer: 1, n_embd: 128, n_head: 2, n_positions: 64, vocab_size: 13317 },
  /** A demo model that trains in minutes on a CPU adapter: 2 layers, 128 wide, 64-token windows. */
  tiny: { n_layer: 2, n_embd: 128, n_head: 4, n_positions: 64, vocab_size: 13317 },
  /** A bigger demo for a real GPU: 6 layers, 384 wide, 256-token windows. */
  mini: { n_layer: 6, n_embd: 384, n_head: 6, n_positions: 256, vocab_size: 13317 },
};
