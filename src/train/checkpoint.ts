// Training checkpoints that lose nothing (Node): weights, AdamW moments, schedule, RNG, data position and carried state, swapped in atomically.
//
// A checkpoint is a folder:
//   config.json, model.safetensors   the model, loadable by Hugging Face (and by loadPretrained)
//   optimizer.safetensors            AdamW's exp_avg.<name> / exp_avg_sq.<name> for every parameter
//   carried.safetensors              what a run carries from step to step besides the weights (XLNet's mems), if any
//   trainer_state.json               the trainer's state (data position, optimizer step, RNG), options, AdamW step counts, log
// It is written complete into "<dir>.tmp" and then renamed over <dir> (the old one moved aside first and
// removed last), so a crash at any moment leaves either the old checkpoint or the new one, never a mix.
// The GPT-2 Trainer and the XLNetTrainer both fit `Checkpointable`.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, readBytes } from '../io/fs.js';
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32, type HostTensor } from '../io/safetensors.js';
import type { AdamW } from '../optim/adamw.js';
import type { GradScaler, GradScalerState } from '../optim/grad_scaler.js';
import { loadPretrained, savePretrained, type PretrainedModel } from '../models/pretrained.js';
import { zeros } from '../tensor.js';
import type { TrainOptions, TrainerState } from './trainer.js';

/** What a checkpoint needs from a trainer. */
export interface Checkpointable<S = TrainerState, O = TrainOptions> {
  readonly model: PretrainedModel;
  readonly optimizer: AdamW;
  /** Plain JSON: where the run is. */
  readonly state: S;
  readonly options: O;
  /** Identifies the training data, so a resume on different data is refused. */
  dataId(): Record<string, number>;
  /** Tensors the run carries between steps besides weights and moments (XLNet's mems), read back to the host. */
  carried?(): Promise<Map<string, HostTensor>>;
  /** Mixed precision's loss scaler, whose scale and growth tracker a checkpoint keeps. */
  readonly scaler?: GradScaler | null;
}

/** What trainer_state.json holds. */
export interface CheckpointMeta<S = TrainerState, O = TrainOptions> {
  format: 'webgpu-lm-checkpoint-1';
  state: S;
  options: O;
  /** Per parameter name: AdamW's step count. */
  adamSteps: Record<string, number>;
  /** The loss scaler's state, for a mixed-precision run. */
  scaler?: GradScalerState;
  /** The trainer's dataId() when it was saved. */
  data: Record<string, number>;
  /** Anything the caller wants back (the CLI keeps its loss log and arguments here). */
  extra: Record<string, unknown>;
}

const CARRIED = 'carried.safetensors';

/** Writes a complete checkpoint of a run at an optimizer-step boundary. */
export async function saveCheckpoint<S, O>(dir: string, trainer: Checkpointable<S, O>, extra: Record<string, unknown> = {}): Promise<void> {
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await savePretrained(trainer.model, tmp);
  const moments = new Map<string, HostTensor>();
  const adamSteps: Record<string, number> = {};
  await trainer.optimizer.syncSteps(); // under loss scaling the steps taken are counted on the GPU
  for (const [name, p] of trainer.model.namedParameters()) {
    const s = trainer.optimizer.state.get(p);
    if (!s) continue;
    adamSteps[name] = s.step;
    moments.set(`exp_avg.${name}`, fromFloat32((await s.expAvg.toArray()) as Float32Array, [...p.shape]));
    moments.set(`exp_avg_sq.${name}`, fromFloat32((await s.expAvgSq.toArray()) as Float32Array, [...p.shape]));
  }
  await atomicWriteFile(path.join(tmp, 'optimizer.safetensors'), serializeSafetensors(moments, { format: 'pt' }));
  const carried = await trainer.carried?.();
  if (carried && carried.size > 0) await atomicWriteFile(path.join(tmp, CARRIED), serializeSafetensors(carried, { format: 'pt' }));
  const meta: CheckpointMeta<S, O> = {
    format: 'webgpu-lm-checkpoint-1',
    state: structuredClone(trainer.state),
    options: trainer.options,
    adamSteps,
    ...(trainer.scaler ? { scaler: await trainer.scaler.state() } : {}),
    data: trainer.dataId(),
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

/** A checkpoint read back: the model and what its trainer needs to continue (call restoreOptimizer once the trainer exists). */
export interface LoadedCheckpoint<S, O> {
  model: PretrainedModel;
  meta: CheckpointMeta<S, O>;
  moments: Map<string, HostTensor>;
  /** carried.safetensors (empty when the run carries nothing). */
  carried: Map<string, HostTensor>;
}

/** Reads a checkpoint; its config.json's model_type decides the model class. */
export async function loadCheckpoint<S = TrainerState, O = TrainOptions>(dir: string): Promise<LoadedCheckpoint<S, O>> {
  const found = findCheckpoint(dir);
  if (!found) throw new Error(`--resume: no checkpoint in ${dir} (expected ${path.join(dir, 'trainer_state.json')})`);
  let meta: CheckpointMeta<S, O>;
  try {
    meta = JSON.parse(await readFile(path.join(found, 'trainer_state.json'), 'utf8')) as CheckpointMeta<S, O>;
  } catch (e) {
    throw new Error(`${found}/trainer_state.json is unreadable: ${(e as Error).message}`);
  }
  if (meta.format !== 'webgpu-lm-checkpoint-1') throw new Error(`${found}: not a webgpu-lm checkpoint (format ${String(meta.format)})`);
  const { tensors: moments } = parseSafetensors(await readBytes(path.join(found, 'optimizer.safetensors')));
  const carriedFile = path.join(found, CARRIED);
  const carried = existsSync(carriedFile) ? parseSafetensors(await readBytes(carriedFile)).tensors : new Map<string, HostTensor>();
  const model = await loadPretrained(found);
  return { model, meta, moments, carried };
}

/** Puts saved AdamW moments and step counts (and the loss scaler's state) back into a trainer. */
export function restoreOptimizer<S, O>(trainer: Checkpointable<S, O>, meta: CheckpointMeta<S, O>, moments: Map<string, HostTensor>): void {
  if (meta.scaler && trainer.scaler) trainer.scaler.load(meta.scaler);
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
