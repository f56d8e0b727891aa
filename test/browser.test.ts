// The page in real headless Chromium (SwiftShader's WebGPU): loads, generates what Node generates, trains, downloads a checkpoint Node loads, fills XLNet <mask>s as Node does, survives bad input and a lost device.
//
// Needs Debian's chromium (`apt-get install chromium`; .ci/run installs it) or CHROMIUM_PATH. Screenshots are
// kept in test-results/browser/.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync, zipSync } from 'fflate';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { useGpu } from './helpers.js';
// @ts-expect-error: plain JavaScript build scripts, no type declarations
import { buildWeb } from '../scripts/build-web.mjs';
// @ts-expect-error: plain JavaScript build scripts, no type declarations
import { serve } from '../scripts/serve.mjs';

useGpu();

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = path.join(ROOT, 'test-results', 'browser');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// SwiftShader runs WebGPU on the CPU: a few tokens per second for the demo model, so the texts here are short.
const SLOW = 300_000;

let tmp: string;
let server: Server;
let browser: Browser;
let base: string;

async function openPage(viewport = { width: 1100, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport, acceptDownloads: true });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(base);
  await page.waitForSelector('body[data-ready=true]', { timeout: SLOW });
  expect(problems).toEqual([]);
  return page;
}

async function setFields(page: Page, values: Record<string, string | number>): Promise<void> {
  for (const [id, v] of Object.entries(values)) await page.fill(`#${id}`, String(v));
}

/** Clicks Generate and returns the finished text. */
async function generateIn(page: Page): Promise<string> {
  await page.click('#generate');
  await page.waitForSelector('#output[data-done=true]', { timeout: SLOW });
  return (await page.textContent('#output')) ?? '';
}

/** What Node generates from a model folder with the CLI's recipe. */
async function nodeText(dir: string, prefix: string, options: w.TextSamplingOptions): Promise<string> {
  const model = await w.loadPretrained(dir);
  const tokenizer = w.loadTokenizer(path.join(dir, 'vocab.txt'), { variant: 'gpt2-chinese' });
  const [text] = await w.sampleTexts(model, tokenizer, prefix, 1, options);
  model.dispose();
  return text!;
}

const XLNET_DEMO = path.join(ROOT, 'web/demo-xlnet');

/** Node's XLNet and tokenizer for a model folder, set up as the page and the CLI set them up (inference settings over pretraining ones). */
async function nodeXLNet(dir: string): Promise<{ model: w.XLNetLMHeadModel; tokenizer: w.SentencePieceTokenizer }> {
  const model = (await w.loadPretrained(dir)) as w.XLNetLMHeadModel;
  Object.assign(model.config, w.XLNET_INFERENCE_CONFIG);
  const tokenizer = w.SentencePieceTokenizer.fromModelBytes(new Uint8Array(readFileSync(path.join(dir, 'spiece.model'))), { mode: 'xlnet' });
  return { model, tokenizer };
}

/** Clicks the XLNet demo's button and waits until it is the loaded model. */
async function loadXLNetDemo(page: Page): Promise<void> {
  await page.click('#load-demo-xlnet');
  await page.waitForSelector('#model-status:has-text("XLNet demo (Song ci): XLNet")', { timeout: SLOW });
}

interface PageFill {
  text: string;
  masks: { piece: string; candidates: { piece: string; probability: number }[] }[];
}

/** Fills `text` in the page; returns the filled text and, per mask, the chosen piece and the listed candidates (exact probabilities). */
async function fillIn(page: Page, text: string): Promise<PageFill> {
  await page.fill('#fill-text', text);
  await page.click('#fill');
  await page.waitForSelector('#fill-output[data-done=true]', { timeout: SLOW });
  return page.evaluate(() => ({
    text: document.getElementById('fill-output')!.textContent ?? '',
    masks: [...document.querySelectorAll<HTMLElement>('#fill-candidates li')].map((li) => ({
      piece: li.dataset.piece!,
      candidates: [...li.querySelectorAll<HTMLElement>('.candidate')].map((c) => ({ piece: c.dataset.piece!, probability: Number(c.dataset.probability) })),
    })),
  }));
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's (sudo apt-get install chromium) or set CHROMIUM_PATH`);
  }
  tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-web-'));
  const sizes = await buildWeb(path.join(tmp, 'site'));
  expect(sizes['webgpu-lm.js'].gzip).toBeGreaterThan(0);
  server = await serve(path.join(tmp, 'site'), 0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--no-sandbox'],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
}, SLOW);

afterAll(async () => {
  await browser?.close();
  server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the web page in headless Chromium', { timeout: SLOW }, () => {
  it('shows the adapter and its features, loads the demo model, and generates what Node generates', async () => {
    const page = await openPage();
    expect(await page.textContent('#adapter')).toMatch(/Adapter: .+ · max buffer .+shader-f16.*subgroups.*timestamp-query/);
    expect(await page.textContent('#model-status')).toMatch(/demo model \(Song ci\): GPT-2, 2 layers, 128 wide.*1\.07M parameters/);
    const options = { length: 12, temperature: 1, topK: 8, topP: 0, repetitionPenalty: 1.2, seed: 5 };
    await page.fill('#prefix', '[CLS]水调歌头');
    await setFields(page, { length: 12, temperature: 1, topk: 8, topp: 0, penalty: 1.2, seed: 5 });
    const text = await generateIn(page);
    expect(await page.textContent('#gen-stats')).toMatch(/^12 tokens in [\d.]+ s · [\d.]+ tokens\/s after the first/);
    expect(text).toBe(await nodeText(path.join(ROOT, 'web/demo'), '[CLS]水调歌头', options));
    expect(text.startsWith('水调歌头')).toBe(true);
    // The README's snippet for your own page, through the library bundle the page loaded: the same text again.
    const fromSnippet = await page.evaluate(async (o) => {
      const { init, gpt2FromFiles, BertTokenizer, sampleTexts } = (globalThis as unknown as { webgpuLm: typeof w }).webgpuLm;
      await init();
      const get = async (f: string) => new Uint8Array(await (await fetch(`demo/${f}`)).arrayBuffer());
      const model = gpt2FromFiles(new TextDecoder().decode(await get('config.json')), await get('model.safetensors'), 'model.safetensors');
      const tokenizer = BertTokenizer.fromVocabText(new TextDecoder().decode(await get('vocab.txt')), { variant: 'gpt2-chinese' });
      const [t] = await sampleTexts(model, tokenizer, '[CLS]水调歌头', 1, o);
      model.dispose();
      return t;
    }, options);
    expect(fromSnippet).toBe(text);
    // Another seed, another text: the seed field is used.
    await page.fill('#seed', '6');
    expect(await generateIn(page)).not.toBe(text);
    await page.screenshot({ path: path.join(ARTIFACTS, 'generate.png'), fullPage: true });
    await page.close();
  });

  it('trains in the tab (loss falls, pause and resume), and its downloaded checkpoint loads in Node and generates the same text', async () => {
    const page = await openPage();
    await setFields(page, { 'train-steps': 12, 'train-batch': 4, 'train-ctx': 32, 'train-layers': 1, 'train-width': 64, 'train-lr': 0.01 });
    await page.click('#train-start');
    await page.waitForSelector('#train-status:has-text("step 3/12")', { timeout: SLOW });
    await page.click('#train-pause');
    await page.waitForSelector('#train-status:has-text("paused")', { timeout: SLOW });
    expect(await page.textContent('#train-pause')).toBe('Resume');
    const pausedAt = Number(/step (\d+)\/12/.exec((await page.textContent('#train-status'))!)![1]);
    expect(pausedAt).toBeLessThan(12);
    await page.click('#train-pause');
    await page.waitForSelector('#train-status:has-text("done")', { timeout: SLOW });
    expect(await page.locator('#loss-chart svg polyline').count()).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'train.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const zip = path.join(tmp, 'checkpoint.zip');
    await download.saveAs(zip);
    const dir = path.join(tmp, 'unzipped');
    for (const [name, bytes] of Object.entries(unzipSync(new Uint8Array(readFileSync(zip))))) {
      if (name.endsWith('/')) continue;
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), bytes);
    }
    const folder = path.join(dir, 'webgpu-lm-model');
    // The loss curve of the whole run, pause included, falls.
    const losses = readFileSync(path.join(folder, 'loss.csv'), 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[1]));
    expect(losses).toHaveLength(12);
    expect(Math.max(...losses.slice(-3))).toBeLessThan(losses[0]! - 0.5);

    // Generate with the trained model in the page and in Node from the downloaded files: the same text.
    await page.click('#train-use');
    await page.waitForSelector('#model-status:has-text("trained here (12 steps)")', { timeout: SLOW });
    await page.fill('#prefix', '[CLS]春');
    await setFields(page, { length: 8, seed: 2 });
    const text = await generateIn(page);
    expect(text).toBe(await nodeText(folder, '[CLS]春', { length: 8, topK: 8, repetitionPenalty: 1.2, seed: 2 }));
    await page.close();
  });

  it('bad input: missing, corrupted, mismatched or too large model files and a wrong URL each get a message; the page keeps working', async () => {
    const page = await openPage();
    const demo = (f: string): Buffer => readFileSync(path.join(ROOT, 'web/demo', f));
    const file = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/octet-stream', buffer });

    await page.setInputFiles('#pick-files', [file('config.json', demo('config.json'))]);
    await page.waitForSelector('#model-error:visible');
    expect(await page.textContent('#model-error')).toMatch(/missing model\.safetensors, a vocabulary\.\nA model folder has config\.json/);

    /** Waits for the model card's error message to change from `before`, and returns it. */
    const nextError = async (before: string | null): Promise<string> => {
      await page.waitForFunction((old) => document.getElementById('model-error')!.textContent !== old, before, { timeout: SLOW });
      return (await page.textContent('#model-error'))!;
    };
    const weights = demo('model.safetensors');
    let shown = await page.textContent('#model-error');
    await page.setInputFiles('#pick-files', [file('config.json', demo('config.json')), file('vocab.txt', demo('vocab.txt')), file('model.safetensors', weights.subarray(0, weights.length - 1000))]);
    shown = await nextError(shown);
    expect(shown).toMatch(/^selected files: model\.safetensors: .*file truncated/);

    // Files that do not fit each other, and a model too large for the adapter (refused from config.json alone).
    const config = JSON.parse(demo('config.json').toString('utf8'));
    const withConfig = (c: object) => [file('config.json', Buffer.from(JSON.stringify(c))), file('vocab.txt', demo('vocab.txt')), file('model.safetensors', weights)];
    await page.setInputFiles('#pick-files', withConfig({ ...config, vocab_size: 100 }));
    shown = await nextError(shown);
    expect(shown).toBe("selected files: the vocabulary has 5220 tokens but config.json's vocab_size is 100");
    const limit = await page.evaluate(async () => {
      const { limits } = await (globalThis as unknown as { webgpuLm: typeof w }).webgpuLm.getDevice();
      return limits.maxBufferSize;
    });
    const huge = Math.ceil(limit / (1024 * 4)) + 1;
    await page.setInputFiles('#pick-files', withConfig({ ...config, n_embd: 1024, n_head: 16, vocab_size: huge }));
    shown = await nextError(shown);
    expect(shown).toMatch(new RegExp(`too large for this adapter: transformer\\.wte\\.weight \\[${huge}, 1024\\] needs .* in one buffer`));

    await page.fill('#model-url', `${base}no-such-model/`);
    await page.click('#url-form button');
    expect(await nextError(shown)).toMatch(/no-such-model\/: no config\.json there/);

    // The demo model is still the one loaded, and still generates.
    expect(await page.textContent('#model-status')).toMatch(/^demo model/);
    await setFields(page, { length: 3 });
    expect((await generateIn(page)).length).toBeGreaterThan(0);
    await page.close();
  });

  it('a lost GPU device mid-generation: a message and a restart button, then it generates again', async () => {
    const page = await openPage();
    await setFields(page, { length: 60 });
    await page.click('#generate');
    await page.waitForFunction(() => /tokens in/.test(document.getElementById('gen-stats')!.textContent ?? ''), undefined, { timeout: SLOW });
    await page.evaluate(async () => {
      const lm = (globalThis as unknown as { webgpuLm: typeof w }).webgpuLm;
      (await lm.getDevice()).device.destroy();
    });
    await page.waitForSelector('#restart-gpu', { timeout: SLOW });
    expect(await page.textContent('#gen-error')).toMatch(/The GPU device was lost/);
    expect(await page.isDisabled('#generate')).toBe(true);
    await page.click('#restart-gpu');
    await page.waitForSelector('#generate:enabled', { timeout: SLOW });
    await setFields(page, { length: 3 });
    expect((await generateIn(page)).length).toBeGreaterThan(0);
    expect(await page.isVisible('#gen-error')).toBe(false);
    await page.close();
  });

  it('XLNet: the page fills <mask>s as Node does (text, candidates, probabilities) and generates what Node generates', async () => {
    const { model, tokenizer } = await nodeXLNet(XLNET_DEMO);
    // SwiftShader and lavapipe round f32 differently, so two candidates within 0.1% of each other could swap (and a
    // flipped choice changes every later round). The comparison takes the first of these texts whose fill in Node
    // has no such near-tie among the 5 candidates the page lists and the 6th after them.
    const TEXTS = ['春花秋<mask>何时<mask>', '春<mask>秋月何时了', '<mask>江东去', '人生如<mask>'];
    let text = '';
    let expected: w.FillResult | undefined;
    for (const t of TEXTS) {
      const r = await w.fillMasks(model, tokenizer, t, { candidates: 6 });
      if (r.masks.every((m) => m.candidates.every((c, i) => i === 0 || m.candidates[i - 1]!.probability > 1.001 * c.probability))) {
        [text, expected] = [t, r];
        break;
      }
    }
    const generateOptions = { length: 6, temperature: 1, topK: 8, topP: 0, repetitionPenalty: 1.2, seed: 5 };
    const [generated] = await w.sampleXLNetTexts(model, tokenizer, '浣溪沙', 1, generateOptions);
    model.dispose();
    if (!expected) throw new Error(`every fill text has a near-tie in Node's candidates for this checkpoint: add another text to TEXTS (${TEXTS.join(', ')})`);

    const page = await openPage();
    await loadXLNetDemo(page);
    const got = await fillIn(page, text);
    expect(got.text).toBe(expected.text);
    expect(got.masks.map((m) => m.piece)).toEqual(expected.masks.map((m) => m.piece));
    got.masks.forEach((m, k) => {
      const want = expected!.masks[k]!.candidates.slice(0, 5);
      expect(m.candidates.map((c) => c.piece)).toEqual(want.map((c) => c.piece));
      m.candidates.forEach((c, i) => expect(Math.abs(c.probability - want[i]!.probability)).toBeLessThan(1e-4));
    });
    // Each filled piece is marked in the text, where the result's spans say.
    expect(await page.locator('#fill-output mark').evaluateAll((marks) => marks.map((m) => m.textContent))).toEqual(expected.masks.map((m) => expected!.text.slice(m.start, m.end)));

    await page.fill('#prefix', '浣溪沙');
    await setFields(page, { length: 6, temperature: 1, topk: 8, topp: 0, penalty: 1.2, seed: 5 });
    expect(await generateIn(page)).toBe(generated);
    await page.close();
  });

  it('XLNet demo: the fill panel appears (and goes with a GPT-2), the training panel says it trains GPT-2 only; desktop and phone layout', async () => {
    const page = await openPage();
    expect(await page.isVisible('#fill-card')).toBe(false);
    expect(await page.isVisible('#train-note')).toBe(false);
    await loadXLNetDemo(page);
    expect(await page.textContent('#model-status')).toMatch(/XLNet, 4 layers, d_model 64, 4 heads, d_inner 256, vocabulary 8000 · [\d.]+M parameters/);
    expect(await page.isVisible('#fill-card')).toBe(true);
    expect(await page.inputValue('#fill-text')).toBe('春花秋<mask>何时了');
    expect(await page.textContent('#train-note')).toMatch(/^Training in the tab is GPT-2 only/);
    // The generate panel's GPT-2 prefix ([CLS] is GPT2-Chinese's poem start) is swapped for plain text.
    expect(await page.inputValue('#prefix')).toBe('浣溪沙');
    const filled = await fillIn(page, '春花秋<mask>何时了');
    expect(filled.masks).toHaveLength(1);
    expect(filled.masks[0]!.candidates).toHaveLength(5);
    expect(await page.textContent('#fill-stats')).toMatch(/^1 mask filled in [\d.]+ s/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'xlnet-fill.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'xlnet-phone.png'), fullPage: true });

    await page.click('#load-demo');
    await page.waitForSelector('#model-status:has-text("demo model (Song ci): GPT-2")', { timeout: SLOW });
    expect(await page.isVisible('#fill-card')).toBe(false);
    expect(await page.isVisible('#train-note')).toBe(false);
    expect(await page.inputValue('#prefix')).toBe('[CLS]浣溪沙');
    await page.close();
  });

  it('XLNet bad input: no <mask>, too long a text, no spiece.model, a spiece.model that is not SentencePiece; a .zip loads; a lost device restarts into the XLNet', async () => {
    const page = await openPage();
    await loadXLNetDemo(page);
    /** Waits for error box `id` to show a message other than `before`, and returns it. */
    const nextError = async (id: string, before: string | null): Promise<string> => {
      await page.waitForFunction(([box, old]) => !document.getElementById(box!)!.hidden && document.getElementById(box!)!.textContent !== old, [id, before], { timeout: SLOW });
      return (await page.textContent(`#${id}`))!;
    };
    await page.fill('#fill-text', '春花秋月何时了');
    await page.click('#fill');
    let shown = await nextError('fill-error', null);
    expect(shown).toMatch(/the text has no <mask>; write one <mask> per piece to predict/);
    await page.fill('#fill-text', `${'春花秋月何时了'.repeat(100)}<mask>`);
    await page.click('#fill');
    expect(await nextError('fill-error', shown)).toMatch(/^the text is \d+ tokens with <sep> <cls>, more than the 512 a fill takes$/);

    const demo = (f: string): Buffer => readFileSync(path.join(XLNET_DEMO, f));
    const file = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/octet-stream', buffer });
    await page.setInputFiles('#pick-files', [file('config.json', demo('config.json')), file('model.safetensors', demo('model.safetensors'))]);
    shown = await nextError('model-error', null);
    expect(shown).toMatch(/^selected files: missing spiece\.model\.\nAn XLNet model folder has config\.json \("model_type": "xlnet"\)/);
    const notSentencePiece = readFileSync(path.join(ROOT, 'web/demo/vocab.txt'));
    await page.setInputFiles('#pick-files', [file('config.json', demo('config.json')), file('model.safetensors', demo('model.safetensors')), file('spiece.model', notSentencePiece)]);
    expect(await nextError('model-error', shown)).toMatch(/^selected files: spiece\.model: not a SentencePiece model/);

    // The demo folder as a .zip through the picker: the XLNet loads from it.
    const zip = zipSync({ 'demo-xlnet': Object.fromEntries(['config.json', 'model.safetensors', 'spiece.model'].map((f) => [f, new Uint8Array(demo(f))])) });
    await page.setInputFiles('#pick-files', [file('demo-xlnet.zip', Buffer.from(zip))]);
    await page.waitForSelector('#model-status:has-text("selected files: XLNet, 4 layers")', { timeout: SLOW });

    // A lost device: the fill fails with a message and a restart button; the restart rebuilds the XLNet from its files.
    await page.fill('#fill-text', '春花秋<mask>何时了');
    await page.evaluate(async () => (await (globalThis as unknown as { webgpuLm: typeof w }).webgpuLm.getDevice()).device.destroy());
    await page.click('#fill');
    await page.waitForSelector('#restart-gpu', { timeout: SLOW });
    expect(await page.textContent('#fill-error')).toMatch(/The GPU device was lost/);
    await page.click('#restart-gpu');
    await page.waitForSelector('#fill:enabled', { timeout: SLOW });
    expect(await page.textContent('#model-status')).toMatch(/^selected files: XLNet/);
    expect((await fillIn(page, '春花秋<mask>何时了')).masks).toHaveLength(1);
    expect(await page.isVisible('#fill-error')).toBe(false);
    await page.close();
  });

  it('phone width: one readable column; without WebGPU: a clear message instead of a blank page', async () => {
    const phone = await openPage({ width: 390, height: 844 });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBe(0);
    await phone.screenshot({ path: path.join(ARTIFACTS, 'phone.png'), fullPage: true });
    await phone.close();

    const page = await browser.newPage();
    await page.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
    await page.goto(base);
    await page.waitForSelector('#fatal:visible');
    expect(await page.textContent('#fatal')).toMatch(/This browser has no WebGPU/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'no-webgpu.png') });
    await page.close();
  });
});
