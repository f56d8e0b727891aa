// Training in the tab: the GPT2-Chinese recipe (own vocabulary, pieces, windows, AdamW + warm-up) on pasted text or the bundled corpus, step by step with pause and resume.

import { strToU8, zipSync } from 'fflate';
import {
  BertTokenizer,
  GPT2LMHeadModel,
  GPT2_CHINESE_TRAIN_DEFAULTS,
  Trainer,
  buildPieces,
  estimatedTotalSteps,
  formatVocabFile,
  gpt2Files,
  lossCurveCsv,
  lossCurveSvg,
  makeVocab,
  manualSeed,
  type CurvePoint,
} from '../../src/browser.js';

export interface TabTrainingOptions {
  articles: readonly string[];
  steps: number;
  batchSize: number;
  nCtx: number;
  nLayer: number;
  nEmbd: number;
  lr: number;
  seed: number;
  /** Articles with at most this many characters are dropped (GPT2-Chinese's min_length). */
  minLength: number;
}

/** One training run: its vocabulary, model, trainer and loss curve. */
export class TabTraining {
  readonly points: CurvePoint[] = [];
  private constructor(
    readonly options: TabTrainingOptions,
    readonly vocab: string[],
    readonly tokenizer: BertTokenizer,
    readonly model: GPT2LMHeadModel,
    readonly trainer: Trainer,
  ) {}

  /** Builds the vocabulary from the text (characters seen twice, or once for a short text), the pieces and the model. */
  static create(options: TabTrainingOptions): TabTraining {
    const { articles, steps, batchSize, nCtx, nLayer, nEmbd, lr, seed, minLength } = options;
    for (const [name, v, lo] of [['steps', steps, 1], ['batch', batchSize, 1], ['context', nCtx, 8], ['layers', nLayer, 1], ['width', nEmbd, 16]] as const) {
      if (!Number.isInteger(v) || v < lo) throw new Error(`${name} must be a whole number >= ${lo}, got ${v}`);
    }
    if (!(lr > 0 && lr < 1)) throw new Error(`the learning rate must be in (0, 1), got ${lr}`);
    // Heads of 32 dimensions, as the demo's 128-wide model has; a width that 32 does not divide gets one head.
    const nHead = nEmbd % 32 === 0 ? nEmbd / 32 : 1;
    const chars = articles.reduce((n, a) => n + a.length, 0);
    const vocab = makeVocab(articles, { minFrequency: chars > 100_000 ? 2 : 1, maxSize: 8000 });
    const tokenizer = new BertTokenizer(vocab, { variant: 'gpt2-chinese' });
    const pieces = buildPieces(articles, tokenizer, { numPieces: 1, minLength });
    const tokens = pieces.reduce((n, p) => n + p.length, 0);
    const stride = Math.max(1, Math.floor((nCtx * 3) / 4));
    const perEpoch = estimatedTotalSteps(tokens, { stride, epochs: 1, batchSize, gradientAccumulation: 1 });
    manualSeed(seed);
    const model = new GPT2LMHeadModel({ n_layer: nLayer, n_embd: nEmbd, n_head: nHead, n_positions: nCtx, vocab_size: vocab.length });
    try {
      const trainer = new Trainer(model, pieces, {
        ...GPT2_CHINESE_TRAIN_DEFAULTS,
        epochs: Math.max(1, Math.ceil(steps / Math.max(1, perEpoch))),
        batchSize,
        lr,
        stride,
        warmupSteps: Math.min(100, Math.floor(steps / 10)),
        seed,
      });
      return new TabTraining(options, vocab, tokenizer, model, trainer);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  get step(): number {
    return this.trainer.state.optimizerStep;
  }

  get done(): boolean {
    return this.step >= this.options.steps || this.trainer.done;
  }

  /**
   * Trains until done or until shouldStop() says so between steps. Each step is one command encoder; its loss is
   * read back after it (the chart needs it), never inside it. onStep gets the mean tokens/s of the steps after
   * this call's first (the first step's own rate until then).
   */
  async run(shouldStop: () => boolean, onStep: (point: CurvePoint, tokensPerSecond: number) => void): Promise<void> {
    this.model.train();
    // The rate counts from the end of this call's first step, which also compiles the kernels (on a first run).
    let since = performance.now();
    let tokens = 0;
    let first = true;
    while (!this.done && !shouldStop()) {
      const result = this.trainer.step();
      const loss = await result.loss.item();
      result.loss.dispose();
      const now = performance.now();
      const point = { step: this.step, loss, tokens: result.tokens, lr: result.lr, epoch: result.epoch + 1 };
      this.points.push(point);
      if (!first) tokens += result.tokens;
      onStep(point, first ? result.tokens / ((now - since) / 1000) : tokens / ((now - since) / 1000));
      if (first) since = now;
      first = false;
      if (!Number.isFinite(loss)) throw new Error(`the loss became ${loss} at step ${this.step}; try a lower learning rate`);
    }
    this.model.eval();
  }

  chartSvg(): string {
    return lossCurveSvg(this.points, { title: 'training loss' });
  }

  /** The checkpoint as a .zip of one folder: config.json, model.safetensors, vocab.txt, loss.csv, loss.svg. */
  async zip(folder: string): Promise<Uint8Array> {
    const { config, weights, vocabText } = await this.files();
    return zipSync({
      [folder]: {
        'config.json': strToU8(config),
        'model.safetensors': [weights, { level: 0 }],
        'vocab.txt': strToU8(vocabText),
        'loss.csv': strToU8(lossCurveCsv(this.points)),
        'loss.svg': strToU8(this.chartSvg()),
      },
    });
  }

  /** The files as a ModelFiles-compatible set, so the page can generate with this model (and rebuild it). */
  async files(): Promise<{ config: string; weights: Uint8Array; vocabText: string }> {
    const { config, weights } = await gpt2Files(this.model);
    return { config, weights, vocabText: formatVocabFile(this.vocab) };
  }

  dispose(): void {
    this.trainer.dispose();
    this.model.dispose();
  }
}
