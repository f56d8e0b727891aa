// The page: pick or drop a GPT-2 or XLNet model, generate with streaming tokens, fill in <mask>s (XLNet), train a tiny GPT-2 in the tab; every GPU call through the same library as Node.

import * as lm from '../../src/browser.js';
import { buildModel, droppedFiles, fetchModelFolder, readFileList, type LoadedModel, type ModelFiles, type ModelType } from './files.js';
import { TabTraining } from './train.js';

// For the console (and the browser tests): the library itself.
(globalThis as { webgpuLm?: typeof lm }).webgpuLm = lm;

const el = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const input = (id: string): HTMLInputElement => el<HTMLInputElement>(id);

/** A number field's value, refused (naming the field) when it is not a number in range. */
function num(id: string, lo: number, hi = Infinity, integer = false): number {
  const field = input(id);
  const v = Number(field.value);
  const name = field.closest('label')?.firstChild?.textContent?.trim() ?? id;
  if (field.value.trim() === '' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new Error(`${name} must be ${integer ? 'a whole number' : 'a number'} from ${lo}${hi === Infinity ? ' up' : ` to ${hi}`}, got "${field.value}"`);
  }
  return v;
}

function showError(id: string, e: unknown): void {
  const box = el(id);
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}
const clearError = (id: string): void => void (el(id).hidden = true);

// ---- state ----

let current: ({ files: ModelFiles } & LoadedModel) | null = null;
let training: TabTraining | null = null;
let trainingRunning = false;
let pauseRequested = false;
let generation: AbortController | null = null;
let filling = false;
let deviceLost = false;

/** Enables exactly the buttons that make sense now. */
function refreshButtons(): void {
  const ready = !deviceLost;
  const busy = generation !== null || filling || trainingRunning;
  el<HTMLButtonElement>('generate').disabled = !ready || !current || busy;
  el<HTMLButtonElement>('stop').disabled = generation === null;
  el<HTMLButtonElement>('fill').disabled = !ready || current?.type !== 'xlnet' || busy;
  el<HTMLButtonElement>('train-start').disabled = !ready || busy;
  const pause = el<HTMLButtonElement>('train-pause');
  pause.disabled = !ready || !training || (!trainingRunning && training.done);
  pause.textContent = trainingRunning || !training || training.done ? 'Pause' : 'Resume';
  const haveSteps = ready && training !== null && !trainingRunning && training.points.length > 0;
  el<HTMLButtonElement>('train-use').disabled = !haveSteps || generation !== null || filling;
  el<HTMLButtonElement>('download').disabled = !haveSteps;
  for (const id of ['load-demo', 'load-demo-xlnet', 'pick-folder', 'pick-files']) (el(id) as HTMLButtonElement | HTMLInputElement).disabled = !ready;
}

// ---- the device ----

/** The loss message when the device is gone, else null (the lost promise may settle just after the failing call). */
async function lostReason(): Promise<string | null> {
  await new Promise((r) => setTimeout(r, 100));
  try {
    await lm.getDevice();
    return null;
  } catch (e) {
    return e instanceof lm.DeviceLostError ? e.message : null;
  }
}

/** Runs a GPU action; on failure shows the error in the card, and offers a restart when the device was lost. */
async function guarded(errorId: string, action: () => Promise<void>): Promise<void> {
  clearError(errorId);
  try {
    await action();
  } catch (e) {
    const lost = await lostReason();
    if (!lost) return showError(errorId, e);
    deviceLost = true;
    showError(errorId, 'The GPU device was lost (the driver reset, or the GPU went away). Nothing on it survives.');
    const box = el(errorId);
    const restart = document.createElement('button');
    restart.type = 'button';
    restart.textContent = 'Restart the GPU';
    restart.id = 'restart-gpu';
    restart.addEventListener('click', () => void restartGpu(errorId));
    box.append(document.createElement('br'), restart);
  } finally {
    refreshButtons();
  }
}

/** A new device after a loss; the current model is rebuilt from the files it came from. Training state is gone. */
async function restartGpu(errorId: string): Promise<void> {
  lm.resetDevice();
  deviceLost = false;
  // Tensors of the lost device are dead: drop them without touching the GPU.
  training = null;
  el('train-status').textContent = 'Training state was on the lost device; start a new run.';
  await guarded(errorId, async () => {
    await startDevice();
    if (current) {
      const files = current.files;
      current = null;
      await loadModel(async () => files);
    }
  });
}

async function startDevice(): Promise<void> {
  const { gpu } = await lm.init();
  const features = ['shader-f16', 'subgroups', 'timestamp-query'].map((f) => `<span class="feature">${gpu.features.has(f) ? '✓' : '✗'} ${f}</span>`);
  el('adapter').innerHTML = `Adapter: <b></b> · max buffer ${lm.formatBytes(gpu.limits.maxBufferSize)} · ${features.join('')}`;
  el('adapter').querySelector('b')!.textContent = gpu.name;
}

// ---- model ----

const GPT2_PREFIX = '[CLS]浣溪沙';
const XLNET_PREFIX = '浣溪沙';

/** Shows the panels of the loaded model's family: XLNet fills in blanks and cannot be trained here. */
function showModelType(type: ModelType): void {
  const xlnet = type === 'xlnet';
  el('fill-card').hidden = !xlnet;
  el('train-note').hidden = !xlnet;
  el('prefix-hint').textContent = xlnet ? '(XLNet continues it, one piece per step)' : '([CLS] starts a new poem)';
  // A prefix still at the other family's default gets this one's ([CLS] is GPT2-Chinese's start of a poem, plain text to XLNet).
  const prefix = el<HTMLTextAreaElement>('prefix');
  if (prefix.value === (xlnet ? GPT2_PREFIX : XLNET_PREFIX)) prefix.value = xlnet ? XLNET_PREFIX : GPT2_PREFIX;
}

/** The status line of a loaded model: family, shape, parameters. */
function modelSummary({ files, ...built }: { files: ModelFiles } & LoadedModel): string {
  const millions = `${(built.model.numParameters() / 1e6).toFixed(2)}M parameters`;
  if (built.type === 'xlnet') {
    const c = built.model.config;
    return `${files.source}: XLNet, ${c.n_layer} layers, d_model ${c.d_model}, ${c.n_head} heads, d_inner ${c.d_inner}, vocabulary ${c.vocab_size} · ${millions}`;
  }
  const c = built.model.config;
  return `${files.source}: GPT-2, ${c.n_layer} layers, ${c.n_embd} wide, ${c.n_head} heads, context ${c.n_positions}, vocabulary ${c.vocab_size} · ${millions}`;
}

async function loadModel(get: () => Promise<ModelFiles>): Promise<void> {
  // Loading disposes the current model's weights, which a running generation or fill is still reading.
  if (generation !== null || filling) throw new Error('the current model is generating or filling: stop it or let it finish, then load another');
  const status = el('model-status');
  const before = status.textContent;
  status.textContent = 'Loading…';
  try {
    const files = await get();
    const built = buildModel(files);
    current?.model.dispose();
    current = { files, ...built };
    status.textContent = modelSummary(current);
    showModelType(current.type);
  } catch (e) {
    status.textContent = before;
    throw e;
  }
}

const load = (get: () => Promise<ModelFiles>): Promise<void> => guarded('model-error', () => loadModel(get));

el('load-demo').addEventListener('click', () => void load(() => fetchModelFolder('demo/', 'demo model (Song ci)')));
el('load-demo-xlnet').addEventListener('click', () => void load(() => fetchModelFolder('demo-xlnet/', 'XLNet demo (Song ci)')));
for (const id of ['pick-folder', 'pick-files']) {
  const picker = input(id);
  picker.addEventListener('change', () => {
    const files = [...(picker.files ?? [])];
    picker.value = '';
    if (files.length === 0) return;
    const folder = files[0]!.webkitRelativePath.split('/')[0];
    void load(() => readFileList(files, folder || 'selected files'));
  });
}
el('url-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const url = input('model-url').value.trim();
  if (url) void load(() => fetchModelFolder(url));
});
const card = el('model-card');
card.addEventListener('dragover', (event) => {
  event.preventDefault();
  card.classList.add('dragging');
});
card.addEventListener('dragleave', () => card.classList.remove('dragging'));
card.addEventListener('drop', (event) => {
  event.preventDefault();
  card.classList.remove('dragging');
  const items = event.dataTransfer?.items;
  if (items) void load(async () => readFileList(await droppedFiles(items), 'dropped files'));
});

// ---- generation ----

async function generateText(): Promise<void> {
  if (!current) throw new Error('load a model first');
  const loaded = current;
  const options = {
    length: num('length', 1, 4096, true),
    temperature: num('temperature', 0),
    topK: num('topk', 0, Infinity, true),
    topP: num('topp', 0, 1),
    repetitionPenalty: num('penalty', 0.01),
    seed: num('seed', 0, 2 ** 20, true),
  };
  const output = el('output');
  const stats = el('gen-stats');
  output.textContent = '';
  output.removeAttribute('data-done');
  generation = new AbortController();
  refreshButtons();
  const start = performance.now();
  let firstAt = 0;
  let tokens = 0;
  const rate = (): string => {
    const seconds = (performance.now() - start) / 1000;
    const after = tokens > 1 ? ` · ${((tokens - 1) / (seconds - firstAt)).toFixed(1)} tokens/s after the first (${firstAt.toFixed(2)} s)` : '';
    return `${tokens} tokens in ${seconds.toFixed(2)} s${after}`;
  };
  const prefix = el<HTMLTextAreaElement>('prefix').value;
  const sampling = {
    ...options,
    signal: generation.signal,
    onText: ([sofar]: string[]) => {
      if (tokens++ === 0) firstAt = (performance.now() - start) / 1000;
      output.textContent = sofar!;
      stats.textContent = rate();
    },
  };
  try {
    const [text] =
      loaded.type === 'xlnet'
        ? await lm.sampleXLNetTexts(loaded.model, loaded.tokenizer, prefix, 1, sampling)
        : await lm.sampleTexts(loaded.model, loaded.tokenizer, prefix, 1, sampling);
    output.textContent = text ?? '';
    stats.textContent = rate() + (generation.signal.aborted ? ' (stopped)' : '');
    output.dataset.done = 'true';
  } finally {
    generation = null;
  }
}

el('generate').addEventListener('click', () => void guarded('gen-error', generateText));
el('stop').addEventListener('click', () => generation?.abort());

// ---- fill in the blanks (XLNet) ----

const percent = (p: number): string => (p >= 0.001 ? `${(p * 100).toFixed(1)}%` : '<0.1%');

/**
 * The CLI's `fill` output laid out: the filled text with each filled piece marked, then per mask its most likely
 * pieces with their probabilities (the exact value in data-probability, for tests and the curious).
 */
function showFill(result: lm.FillResult): void {
  const output = el('fill-output');
  output.replaceChildren();
  let at = 0;
  result.masks.forEach((m, k) => {
    const mark = Object.assign(document.createElement('mark'), { textContent: result.text.slice(m.start, m.end), title: `<mask> ${k + 1}: ${m.piece}` });
    output.append(result.text.slice(at, m.start), mark);
    at = m.end;
  });
  output.append(result.text.slice(at));
  el('fill-candidates').replaceChildren(
    ...result.masks.map((m, k) => {
      const li = document.createElement('li');
      li.dataset.piece = m.piece;
      const label = Object.assign(document.createElement('span'), { className: 'mask-label', textContent: `<mask> ${k + 1}` });
      li.append(label, Object.assign(document.createElement('mark'), { textContent: m.piece }));
      for (const c of m.candidates) {
        const chip = Object.assign(document.createElement('span'), { className: c.id === m.id ? 'candidate chosen' : 'candidate' });
        chip.dataset.piece = c.piece;
        chip.dataset.probability = String(c.probability);
        // The chip's background is a bar as long as the probability.
        chip.style.setProperty('--p', `${(c.probability * 100).toFixed(2)}%`);
        chip.append(Object.assign(document.createElement('b'), { textContent: c.piece }), ` ${percent(c.probability)}`);
        li.append(chip);
      }
      return li;
    }),
  );
}

async function fillText(): Promise<void> {
  if (current?.type !== 'xlnet') throw new Error('filling in blanks needs an XLNet model: load the XLNet demo or an XLNet folder');
  const options = {
    temperature: num('fill-temperature', 0),
    topK: num('fill-topk', 0, Infinity, true),
    seed: num('fill-seed', 0, 2 ** 20, true),
    candidates: num('fill-candidates-n', 0, 20, true),
  };
  const output = el('fill-output');
  const stats = el('fill-stats');
  output.replaceChildren();
  output.removeAttribute('data-done');
  el('fill-candidates').replaceChildren();
  stats.textContent = 'Filling…';
  filling = true;
  refreshButtons();
  const start = performance.now();
  try {
    const result = await lm.fillMasks(current.model, current.tokenizer, el<HTMLTextAreaElement>('fill-text').value, options);
    showFill(result);
    const n = result.masks.length;
    stats.textContent = `${n} ${n === 1 ? 'mask' : 'masks'} filled in ${((performance.now() - start) / 1000).toFixed(2)} s (one forward pass each)`;
    output.dataset.done = 'true';
  } catch (e) {
    stats.textContent = '';
    throw e;
  } finally {
    filling = false;
  }
}

el('fill').addEventListener('click', () => void guarded('fill-error', fillText));
el('insert-mask').addEventListener('click', () => {
  const box = el<HTMLTextAreaElement>('fill-text');
  box.setRangeText('<mask>', box.selectionStart, box.selectionEnd, 'end');
  box.focus();
});

// ---- training ----

const sourceIsText = (): boolean => document.querySelector<HTMLInputElement>('input[name=source]:checked')?.value === 'text';
for (const radio of document.querySelectorAll<HTMLInputElement>('input[name=source]')) {
  radio.addEventListener('change', () => void (el('train-text').hidden = !sourceIsText()));
}

async function articles(): Promise<string[]> {
  if (sourceIsText()) {
    const text = el<HTMLTextAreaElement>('train-text').value;
    if (text.trim() === '') throw new Error('paste some text to train on first');
    return lm.parseCorpus(new TextEncoder().encode(text), 'your text.txt');
  }
  const response = await fetch('songci.json.gz');
  if (!response.ok) throw new Error(`cannot fetch the bundled corpus: HTTP ${response.status}`);
  return lm.parseCorpus(new Uint8Array(await response.arrayBuffer()), 'songci.json.gz');
}

async function runTraining(): Promise<void> {
  const run = training!;
  const status = el('train-status');
  trainingRunning = true;
  pauseRequested = false;
  refreshButtons();
  try {
    await run.run(
      () => pauseRequested,
      (point, tps) => {
        status.textContent = `step ${point.step}/${run.options.steps} · loss ${point.loss.toFixed(3)} · lr ${point.lr!.toExponential(2)} · ${tps.toFixed(0)} tokens/s`;
        el('loss-chart').innerHTML = run.chartSvg();
      },
    );
    status.textContent += run.done ? ' · done' : ' · paused';
  } finally {
    trainingRunning = false;
  }
}

async function startTraining(): Promise<void> {
  const status = el('train-status');
  status.textContent = 'Reading the text and building the vocabulary…';
  const corpus = await articles();
  const options = {
    articles: corpus,
    steps: num('train-steps', 1, 1e7, true),
    batchSize: num('train-batch', 1, 1024, true),
    nCtx: num('train-ctx', 8, 1024, true),
    nLayer: num('train-layers', 1, 48, true),
    nEmbd: num('train-width', 16, 4096, true),
    lr: num('train-lr', 1e-7, 0.999),
    seed: 1,
    minLength: sourceIsText() ? 1 : 8,
  };
  training?.dispose();
  training = null;
  // Let the status paint before the synchronous vocabulary and tokenization work.
  await new Promise((r) => setTimeout(r, 0));
  training = TabTraining.create(options);
  el('loss-chart').innerHTML = '';
  status.textContent = `${corpus.length} articles, vocabulary ${training.vocab.length}, ${(training.model.numParameters() / 1e6).toFixed(2)}M parameters: compiling kernels…`;
  await runTraining();
}

el('train-start').addEventListener('click', () => void guarded('train-error', startTraining));
el('train-pause').addEventListener('click', () => {
  if (trainingRunning) pauseRequested = true;
  else if (training && !training.done) void guarded('train-error', runTraining);
});
el('train-use').addEventListener('click', () =>
  void guarded('train-error', async () => {
    const { config, weights, vocabText } = await training!.files();
    await loadModel(async () => ({ source: `trained here (${training!.step} steps)`, type: 'gpt2', config, weights, weightsName: 'model.safetensors', vocab: { kind: 'wordpiece', text: vocabText } }));
  }),
);
el('download').addEventListener('click', () =>
  void guarded('train-error', async () => {
    const bytes = await training!.zip('webgpu-lm-model');
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
    const a = Object.assign(document.createElement('a'), { href: url, download: 'webgpu-lm-model.zip' });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }),
);

// ---- start ----

async function boot(): Promise<void> {
  refreshButtons();
  if (!('gpu' in navigator)) {
    const fatal = el('fatal');
    fatal.textContent =
      'This browser has no WebGPU, so nothing here can run.\n' +
      'Use Chrome or Edge 113+ (or Safari 26 / Firefox 141+ where WebGPU is on); on Linux Chrome needs --enable-unsafe-webgpu --enable-features=Vulkan.';
    fatal.hidden = false;
    el('adapter').textContent = 'No WebGPU in this browser.';
    return;
  }
  try {
    await startDevice();
  } catch (e) {
    const fatal = el('fatal');
    fatal.textContent = `WebGPU is there but gave no device: ${(e as Error).message}`;
    fatal.hidden = false;
    el('adapter').textContent = 'No WebGPU adapter.';
    deviceLost = true;
    refreshButtons();
    return;
  }
  refreshButtons();
  await load(() => fetchModelFolder('demo/', 'demo model (Song ci)'));
  document.body.dataset.ready = 'true';
}

void boot();
