// The page: pick or drop a model, generate with streaming tokens, train a tiny GPT-2 in the tab; every GPU call through the same library as Node.

import * as lm from '../../src/browser.js';
import { buildModel, droppedFiles, fetchModelFolder, readFileList, type ModelFiles } from './files.js';
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

let current: { files: ModelFiles; model: lm.GPT2LMHeadModel; tokenizer: lm.Tokenizer } | null = null;
let training: TabTraining | null = null;
let trainingRunning = false;
let pauseRequested = false;
let generation: AbortController | null = null;
let deviceLost = false;

/** Enables exactly the buttons that make sense now. */
function refreshButtons(): void {
  const ready = !deviceLost;
  el<HTMLButtonElement>('generate').disabled = !ready || !current || generation !== null || trainingRunning;
  el<HTMLButtonElement>('stop').disabled = generation === null;
  el<HTMLButtonElement>('train-start').disabled = !ready || trainingRunning || generation !== null;
  const pause = el<HTMLButtonElement>('train-pause');
  pause.disabled = !ready || !training || (!trainingRunning && training.done);
  pause.textContent = trainingRunning || !training || training.done ? 'Pause' : 'Resume';
  const haveSteps = ready && training !== null && !trainingRunning && training.points.length > 0;
  el<HTMLButtonElement>('train-use').disabled = !haveSteps || generation !== null;
  el<HTMLButtonElement>('download').disabled = !haveSteps;
  for (const id of ['load-demo', 'pick-folder', 'pick-files']) (el(id) as HTMLButtonElement | HTMLInputElement).disabled = !ready;
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

async function loadModel(get: () => Promise<ModelFiles>): Promise<void> {
  const status = el('model-status');
  const before = status.textContent;
  status.textContent = 'Loading…';
  try {
    const files = await get();
    const built = buildModel(files);
    current?.model.dispose();
    current = { files, ...built };
    const c = built.model.config;
    status.textContent =
      `${files.source}: GPT-2, ${c.n_layer} layers, ${c.n_embd} wide, ${c.n_head} heads, context ${c.n_positions}, ` +
      `vocabulary ${c.vocab_size} · ${(built.model.numParameters() / 1e6).toFixed(2)}M parameters`;
  } catch (e) {
    status.textContent = before;
    throw e;
  }
}

const load = (get: () => Promise<ModelFiles>): Promise<void> => guarded('model-error', () => loadModel(get));

el('load-demo').addEventListener('click', () => void load(() => fetchModelFolder('demo/', 'demo model (Song ci)')));
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
  const { model, tokenizer } = current;
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
  try {
    const [text] = await lm.sampleTexts(model, tokenizer, el<HTMLTextAreaElement>('prefix').value, 1, {
      ...options,
      signal: generation.signal,
      onText: ([sofar]) => {
        if (tokens++ === 0) firstAt = (performance.now() - start) / 1000;
        output.textContent = sofar!;
        stats.textContent = rate();
      },
    });
    output.textContent = text ?? '';
    stats.textContent = rate() + (generation.signal.aborted ? ' (stopped)' : '');
    output.dataset.done = 'true';
  } finally {
    generation = null;
  }
}

el('generate').addEventListener('click', () => void guarded('gen-error', generateText));
el('stop').addEventListener('click', () => generation?.abort());

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
    await loadModel(async () => ({ source: `trained here (${training!.step} steps)`, config, weights, weightsName: 'model.safetensors', vocab: { kind: 'wordpiece', text: vocabText } }));
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
