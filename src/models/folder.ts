// A Hugging Face GPT-2 or XLNet folder as bytes (config.json + weights), shared by Node's loadPretrained/savePretrained and the web page. Browser-clean.

import { serializeSafetensors } from '../io/safetensors.js';
import { parseWeights } from '../io/weights.js';
import type { GPT2LMHeadModel } from './gpt2.js';
import { gpt2FromStateDict, gpt2StateDict } from './state_dict.js';
import { xlnetFromStateDict, xlnetStateDict, type XLNetLMHeadModel } from './xlnet.js';

/** config.json's text as an object; `where` names the file in errors. */
export function parseConfigJson(text: string, where = 'config.json'): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${where} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Refuses configs of other model types (XLNet comes with its own loader). */
export function expectGpt2(config: Record<string, unknown>, where: string): void {
  const type = config.model_type ?? 'gpt2';
  if (type !== 'gpt2') throw new Error(`${where}: model_type "${String(type)}" is not GPT-2`);
}

/** Runs `build`, naming `where` (a folder, a URL) in its error. */
function named<T>(where: string, build: () => T): T {
  try {
    return build();
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

/**
 * A model from a folder's files: config.json's text and one weight file's bytes (model.safetensors or
 * pytorch_model.bin, told apart by their contents). Errors name `where` (a folder, a URL).
 */
export function gpt2FromFiles(configText: string, weights: Uint8Array, weightsName: string, where = '.'): GPT2LMHeadModel {
  const config = parseConfigJson(configText, `${where}/config.json`);
  expectGpt2(config, where);
  const tensors = named(where, () => parseWeights(weights, weightsName));
  return named(where, () => gpt2FromStateDict(config, tensors));
}

/** gpt2FromFiles for an XLNet folder (config.json's model_type "xlnet"); its tokenizer, spiece.model, is read apart. */
export function xlnetFromFiles(configText: string, weights: Uint8Array, weightsName: string, where = '.'): XLNetLMHeadModel {
  const config = parseConfigJson(configText, `${where}/config.json`);
  if (config.model_type !== 'xlnet') throw new Error(`${where}: model_type "${String(config.model_type ?? 'gpt2')}" is not an XLNet (config.json needs "model_type": "xlnet")`);
  const tensors = named(where, () => parseWeights(weights, weightsName));
  return named(where, () => xlnetFromStateDict(config, tensors));
}

/** config.json (text) and model.safetensors (bytes) as Hugging Face's save_pretrained writes them. */
export async function gpt2Files(model: GPT2LMHeadModel, configChanges: Record<string, unknown> = {}): Promise<{ config: string; weights: Uint8Array }> {
  const weights = serializeSafetensors(await gpt2StateDict(model), { format: 'pt' });
  const config = { architectures: ['GPT2LMHeadModel'], ...model.config, ...configChanges, model_type: 'gpt2' };
  return { config: `${JSON.stringify(config, null, 2)}\n`, weights };
}

/** config.json and model.safetensors of an XLNet, as XLNetLMHeadModel.save_pretrained writes them. */
export async function xlnetFiles(model: XLNetLMHeadModel, configChanges: Record<string, unknown> = {}): Promise<{ config: string; weights: Uint8Array }> {
  const weights = serializeSafetensors(await xlnetStateDict(model), { format: 'pt' });
  const config = { architectures: ['XLNetLMHeadModel'], ...model.config, ...configChanges, model_type: 'xlnet' };
  return { config: `${JSON.stringify(config, null, 2)}\n`, weights };
}
