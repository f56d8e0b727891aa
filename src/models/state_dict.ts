// Model weights from Hugging Face state dicts (name -> host tensor): the shared upload and checks, and GPT-2's names and tied head. Browser-clean.

import { fromFloat32, toFloat32, type HostTensor } from '../io/safetensors.js';
import { withoutInit } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { GPT2LMHeadModel, gpt2Config, type GPT2Config } from './gpt2.js';

/** Buffers some checkpoints carry that are not weights: the causal-mask buffer and its fill value (gpt2.md §2). */
const MASK_BUFFER = /(^|\.)attn\.(bias|masked_bias)$/;

/** "transformer.h.0.ln_1.weight" and "h.0.ln_1.weight" name the same weight (GPT2LMHeadModel vs GPT2Model checkpoints). */
function canonical(name: string): string {
  return name.startsWith('transformer.') ? name.slice('transformer.'.length) : name;
}

/** The model's weights by canonical name (no "transformer." prefix), the fixed sinusoid table included. */
function weightsByName(model: GPT2LMHeadModel): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, p] of model.namedParameters()) out.set(canonical(name), p);
  if (model.config.position_embedding_type === 'sinusoidal') out.set('wpe.weight', model.transformer.wpe.weight);
  return out;
}

/** How a model family reads its checkpoints, for uploadStateDict. */
export interface StateDictRules {
  /** "GPT-2", "XLNet": the start of every error. */
  family: string;
  /** The model's name for a stored name (prefix handling). */
  canonical: (stored: string) => string;
  /** Stored tensors that are not weights of this model (mask buffers, tied or other heads). */
  skip: (name: string) => boolean;
  /** The config sizes that decide every shape, for the wrong-shape error: "n_embd 64, n_head 2, …". */
  sizes: string;
  /** What an unknown tensor is not, for its error: "not a GPT-2 weight for this config". */
  notOurs: string;
}

/**
 * Uploads each stored tensor into the parameter of its canonical name, refusing unknown and mis-shaped ones.
 * Returns the names filled; the caller checks what is missing.
 */
export function uploadStateDict(targets: ReadonlyMap<string, Tensor>, weights: ReadonlyMap<string, HostTensor>, rules: StateDictRules): Set<string> {
  const loaded = new Set<string>();
  for (const [stored, host] of weights) {
    const name = rules.canonical(stored);
    if (rules.skip(name)) continue;
    const target = targets.get(name);
    if (!target) throw new Error(`${rules.family} checkpoint: unexpected tensor "${stored}" (${rules.notOurs})`);
    if (host.shape.join() !== target.shape.join()) {
      throw new Error(`${rules.family} checkpoint: "${stored}" has shape [${host.shape}] but the config (${rules.sizes}) needs [${target.shape}]`);
    }
    target.upload(toFloat32(host));
    loaded.add(name);
  }
  return loaded;
}

/** Throws naming (up to 8 of) the targets not in `loaded`. */
export function expectComplete(family: string, targets: Iterable<string>, loaded: ReadonlySet<string>): void {
  const missing = [...targets].filter((n) => !loaded.has(n));
  if (missing.length > 0) {
    throw new Error(`${family} checkpoint: missing ${missing.length} weight(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`);
  }
}

/**
 * A GPT2LMHeadModel with the weights of a Hugging Face state dict. Accepts names with or without the
 * "transformer." prefix, skips attn.bias / attn.masked_bias buffers, uses wte when a tied lm_head.weight is
 * absent (or present: tied means the same matrix), and refuses missing, unknown or mis-shaped tensors.
 */
export function gpt2FromStateDict(config: Partial<GPT2Config>, weights: ReadonlyMap<string, HostTensor>): GPT2LMHeadModel {
  const cfg = gpt2Config(config);
  const model = withoutInit(() => new GPT2LMHeadModel(cfg));
  try {
    const targets = weightsByName(model);
    const sinusoidal = cfg.position_embedding_type === 'sinusoidal';
    const loaded = uploadStateDict(targets, weights, {
      family: 'GPT-2',
      canonical,
      // Mask buffers, a tied head, and sinusoidal positions (recomputed, whatever a checkpoint saved for them).
      skip: (name) => MASK_BUFFER.test(name) || (name === 'lm_head.weight' && cfg.tie_word_embeddings) || (name === 'wpe.weight' && sinusoidal),
      sizes: `n_embd ${cfg.n_embd}, n_head ${cfg.n_head}, n_layer ${cfg.n_layer}, vocab_size ${cfg.vocab_size}, n_positions ${cfg.n_positions}`,
      notOurs: 'not a GPT-2 weight for this config',
    });
    const wte = weights.get('transformer.wte.weight') ?? weights.get('wte.weight');
    if (!cfg.tie_word_embeddings && !loaded.has('lm_head.weight') && wte) {
      // An untied model saved without its head: start the head from the embedding, as a tied one would be.
      targets.get('lm_head.weight')!.upload(toFloat32(wte));
      loaded.add('lm_head.weight');
    }
    expectComplete('GPT-2', [...targets.keys()].filter((n) => !(n === 'wpe.weight' && sinusoidal)), loaded);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The model's weights under Hugging Face's GPT2LMHeadModel names, as save_pretrained writes them: a tied
 * lm_head.weight is left out; a sinusoidal table is saved as wpe.weight so HF can load the model.
 */
export async function gpt2StateDict(model: GPT2LMHeadModel): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of weightsByName(model)) {
    const hfName = name.startsWith('lm_head.') ? name : `transformer.${name}`;
    out.set(hfName, fromFloat32((await t.toArray()) as Float32Array, [...t.shape]));
  }
  return out;
}
