// Training checkpoints that lose nothing (Node): weights, AdamW moments, schedule, RNG and data position, swapped in atomically.
//
// A checkpoint is a folder:
//   config.json, model.safetensors   the model, loadable by Hugging Face (and by loadPretrained)
//   optimizer.safetensors            AdamW's exp_avg.<name> / exp_avg_sq.<name> for every parameter
//   trainer_state.json               TrainerState (epoch, batch, optimizer step, RNG), options, AdamW step counts, log
// It is written complete into "<dir>.tmp" and then renamed over <dir> (the old one moved aside first and
// removed last), so a crash at any moment leaves either the old checkpoint or the new one, never a mix.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, readBytes } from '../io/fs.js';
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32, type HostTensor } from '../io/safetensors.js';
import { GPT2LMHeadModel } from '../models/gpt2.js';
import { loadGpt2, savePretrained } from '../models/pretrained.js';
import { zeros } from '../tensor.js';
import type { TrainOptions, Trainer, TrainerState } from './trainer.js';

/** What trainer_state.json holds. */
export interface CheckpointMeta {
  format: 'webgpu-lm-checkpoint-1';
  state: TrainerState;
  options: TrainOptions;
  /** Per parameter name: AdamW's step count. */
  adamSteps: Record<string, number>;
  /** Identifies the tokenized corpus, so a resume on different data is refused. */
  data: { pieces: number; tokens: number };
  /** Anything the caller wants back (the CLI keeps its loss log and arguments here). */
  extra: Record<string, unknown>;
}

/** Writes a complete checkpoint of a run at an optimizer-step boundary. */
export async function saveCheckpoint(dir: string, trainer: Trainer, extra: Record<string, unknown> = {}): Promise<void> {
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await savePretrained(trainer.model, tmp);
  const moments = new Map<string, HostTensor>();
  const adamSteps: Record<string, number> = {};
  for (const [name, p] of trainer.model.namedParameters()) {
    const s = trainer.optimizer.state.get(p);
    if (!s) continue;
    adamSteps[name] = s.step;
    moments.set(`exp_avg.${name}`, fromFloat32((await s.expAvg.toArray()) as Float32Array, [...p.shape]));
    moments.set(`exp_avg_sq.${name}`, fromFloat32((await s.expAvgSq.toArray()) as Float32Array, [...p.shape]));
  }
  await atomicWriteFile(path.join(tmp, 'optimizer.safetensors'), serializeSafetensors(moments, { format: 'pt' }));
  const meta: CheckpointMeta = {
    format: 'webgpu-lm-checkpoint-1',
    state: structuredClone(trainer.state),
    options: trainer.options,
    adamSteps,
    data: { pieces: trainer.pieces.length, tokens: trainer.pieces.reduce((n, p) => n + p.length, 0) },
    extra,
  };
  await atomicWriteFile(path.join(tmp, 'trainer_state.json'), `${JSON.stringify(meta, null, 2)}\n`);
  const old = `${dir}.old`;
  await rm(old, { recursive: true, force: true });
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}

/** The checkpoint folder to resume from: <dir>, or <dir>.old if a crash interrupted the swap. */
export function findCheckpoint(dir: string): string | null {
  for (const d of [dir, `${dir}.old`]) if (existsSync(path.join(d, 'trainer_state.json'))) return d;
  return null;
}

/** Reads a checkpoint: the model and what Trainer needs to continue (call restoreOptimizer once the Trainer exists). */
export async function loadCheckpoint(dir: string): Promise<{ model: GPT2LMHeadModel; meta: CheckpointMeta; moments: Map<string, HostTensor> }> {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`--resume: no checkpoint in ${dir} (expected ${path.join(dir, 'trainer_state.json')})`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(await readFile(path.join(found, 'trainer_state.json'), 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new Error(`${found}/trainer_state.json is unreadable: ${(e as Error).message}`);
  }
  if (meta.format !== 'webgpu-lm-checkpoint-1') throw new Error(`${found}: not a webgpu-lm checkpoint (format ${String(meta.format)})`);
  const { tensors: moments } = parseSafetensors(await readBytes(path.join(found, 'optimizer.safetensors')));
  const model = await loadGpt2(found, 'resume');
  return { model, meta, moments };
}

/** Puts saved AdamW moments and step counts back into a Trainer's optimizer. */
export function restoreOptimizer(trainer: Trainer, meta: CheckpointMeta, moments: Map<string, HostTensor>): void {
  for (const [name, p] of trainer.model.namedParameters()) {
    const step = meta.adamSteps[name];
    if (step === undefined) continue;
    const m = moments.get(`exp_avg.${name}`);
    const v = moments.get(`exp_avg_sq.${name}`);
    if (!m || !v) throw new Error(`checkpoint: optimizer state for ${name} is missing`);
    const expAvg = zeros(p.shape).upload(toFloat32(m));
    const expAvgSq = zeros(p.shape).upload(toFloat32(v));
    expAvg.untrack();
    expAvgSq.untrack();
    trainer.optimizer.state.set(p, { step, expAvg, expAvgSq });
  }
}
