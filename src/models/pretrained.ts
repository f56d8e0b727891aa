// loadPretrained(dir) / savePretrained(model, dir): Hugging Face model folders on disk (Node only).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, readBytes } from '../io/fs.js';
import type { HostTensor } from '../io/safetensors.js';
import { parseWeights } from '../io/weights.js';
import { expectGpt2, gpt2Files, parseConfigJson, xlnetFiles } from './folder.js';
import { GPT2LMHeadModel } from './gpt2.js';
import { gpt2FromStateDict } from './state_dict.js';
import { XLNetLMHeadModel, xlnetFromStateDict } from './xlnet.js';

/** Weight files we look for, in order of preference. */
const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin'];

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseConfigJson(text, file);
}

/** All tensors of a model folder: one safetensors file, a sharded set (index.json), or a PyTorch .bin (zip or legacy). */
async function readWeights(dir: string): Promise<Map<string, HostTensor>> {
  const found = WEIGHT_FILES.find((f) => existsSync(path.join(dir, f)));
  if (!found) throw new Error(`${dir}: no weights found (looked for ${WEIGHT_FILES.join(', ')})`);
  const file = path.join(dir, found);
  if (found.endsWith('.index.json')) {
    const index = await readJson(file);
    const map = index.weight_map as Record<string, string> | undefined;
    if (!map || typeof map !== 'object') throw new Error(`${file}: no "weight_map"`);
    const all = new Map<string, HostTensor>();
    for (const shard of new Set(Object.values(map))) {
      for (const [k, v] of parseWeights(await readBytes(path.join(dir, shard)), shard)) all.set(k, v);
    }
    return all;
  }
  try {
    return parseWeights(await readBytes(file), found);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** The model classes a folder can hold. */
export type PretrainedModel = GPT2LMHeadModel | XLNetLMHeadModel;

/** Reads config.json once, lets `check` refuse it before the weights are read, then builds the model its model_type names. */
async function load(dir: string, check?: (config: Record<string, unknown>) => void): Promise<PretrainedModel> {
  const config = await readJson(path.join(dir, 'config.json'));
  check?.(config);
  const type = config.model_type ?? 'gpt2';
  if (type !== 'gpt2' && type !== 'xlnet') throw new Error(`${dir}: model_type "${String(type)}" is not supported (supported: gpt2, xlnet)`);
  const weights = await readWeights(dir);
  try {
    return type === 'xlnet' ? xlnetFromStateDict(config, weights) : gpt2FromStateDict(config, weights);
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
}

/**
 * Loads a Hugging Face model folder (config.json + weights), choosing the model class by config.model_type.
 * `check` sees config.json first and may refuse it (by throwing) before any weights are read.
 */
export function loadPretrained(dir: string, check?: (config: Record<string, unknown>) => void): Promise<PretrainedModel> {
  return load(dir, check);
}

/** loadPretrained for what runs GPT-2 only (`command` names it in the error an XLNet folder gets). */
export async function loadGpt2(dir: string, command: string): Promise<GPT2LMHeadModel> {
  return (await load(dir, (config) => expectGpt2(config, `${dir} (${command} runs GPT-2 models)`))) as GPT2LMHeadModel;
}

/**
 * Writes config.json and model.safetensors that Hugging Face's from_pretrained loads; each file atomically.
 * `configChanges` replace fields of the written config.json (not of the model).
 */
export async function savePretrained(model: PretrainedModel, dir: string, configChanges: Record<string, unknown> = {}): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  const { config, weights } = model instanceof XLNetLMHeadModel ? await xlnetFiles(model, configChanges) : await gpt2Files(model, configChanges);
  await atomicWriteFile(path.join(dir, 'model.safetensors'), weights);
  await atomicWriteFile(path.join(dir, 'config.json'), config);
}

GPT2LMHeadModel.saver = savePretrained;
