// What `train` (GPT-2) and `train --model xlnet` share around their loops: resuming a run from its checkpoint, Ctrl-C, and the loss log.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PretrainedModel } from '../models/pretrained.js';
import type { Tensor } from '../tensor.js';
import { findCheckpoint, loadCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import { lossCurveCsv, lossCurveSvg, type CurvePoint } from '../train/curve.js';
import type { FlagValue } from './args.js';
import type { Progress } from './progress.js';

/**
 * --resume: the checkpoint in `checkpointDir` and the flags to continue with. The run keeps the flags it started
 * with (data, model, schedule and batch size must not change); only `runFlags`, how this invocation runs (when to
 * stop, how often to log and checkpoint), come from the new command line. A checkpoint of another model class
 * is refused with `otherKind` (what to do instead).
 */
export async function resumeRun<S, O, M extends PretrainedModel>(
  checkpointDir: string,
  flags: Record<string, FlagValue>,
  runFlags: readonly string[],
  modelClass: abstract new (...args: never[]) => M,
  otherKind: string,
): Promise<{ resumed: LoadedCheckpoint<S, O>; model: M; flags: Record<string, FlagValue> }> {
  if (!findCheckpoint(checkpointDir)) throw new Error(`--resume: no checkpoint in ${checkpointDir}`);
  const resumed = await loadCheckpoint<S, O>(checkpointDir);
  if (!(resumed.model instanceof modelClass)) {
    resumed.model.dispose();
    throw new Error(`--resume: ${checkpointDir} holds ${otherKind}`);
  }
  const continued: Record<string, FlagValue> = { ...(resumed.meta.extra.flags as Record<string, FlagValue>), resume: true };
  for (const k of runFlags) continued[k] = flags[k]!;
  return { resumed, model: resumed.model, flags: continued };
}

/** Ctrl-C during training: the first one sets `interrupted` (the loop checkpoints and stops); dispose() removes the handler. */
export function catchInterrupt(): { readonly interrupted: boolean; dispose(): void } {
  const state = { interrupted: false };
  const onSigint = (): void => {
    state.interrupted = true;
  };
  process.once('SIGINT', onSigint);
  return {
    get interrupted() {
      return state.interrupted;
    },
    dispose: () => void process.removeListener('SIGINT', onSigint),
  };
}

/** The last line of a run that stopped early (Ctrl-C or --max-steps) with its checkpoint saved. */
export function stoppedMessage(interrupted: boolean, step: number, checkpointDir: string): string {
  return interrupted
    ? `interrupted: checkpoint saved in ${checkpointDir}; continue with --resume`
    : `stopped after ${step} steps (--max-steps): checkpoint saved; continue with --resume`;
}

/** A training step as the log sees it (the GPT-2 and XLNet trainers' step results). */
export interface LoggedStep {
  /** 0-d loss on the GPU; the log disposes it. */
  loss: Tensor;
  tokens: number;
  lr: number;
  /** 0-based. */
  epoch: number;
}

/** The loss curve and the progress bar, with tokens/s over the steps since the last report. */
export class LossLog {
  private windowTokens = 0;
  private windowStart = performance.now();

  constructor(
    readonly curve: CurvePoint[],
    private readonly progress: Progress,
  ) {}

  /** Counts a step; when `report`, reads its loss back (the training loop's only read-back) and shows it. */
  async step(step: number, r: LoggedStep, report: boolean): Promise<void> {
    this.windowTokens += r.tokens;
    if (report) {
      const loss = await r.loss.item();
      const now = performance.now();
      const tokensPerSecond = this.windowTokens / ((now - this.windowStart) / 1000);
      this.windowTokens = 0;
      this.windowStart = now;
      this.curve.push({ step, loss, tokens: r.tokens, lr: r.lr, epoch: r.epoch + 1 });
      this.progress.update(step, { loss, tokensPerSecond, epoch: r.epoch + 1, lr: r.lr });
    }
    r.loss.dispose();
  }

  /** loss.csv and loss.svg into `dir`. */
  async write(dir: string, title: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'loss.csv'), lossCurveCsv(this.curve));
    await writeFile(path.join(dir, 'loss.svg'), lossCurveSvg(this.curve, { title }));
  }
}
