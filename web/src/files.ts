// Model folders in the page: gather config + weights + tokenizer files (GPT-2's vocabulary, XLNet's spiece.model) from a picker, a drop, a .zip or a URL, and build model and tokenizer from them.

import { unzipSync } from 'fflate';
import {
  BertTokenizer,
  GPT2Tokenizer,
  SentencePieceTokenizer,
  XLNET_INFERENCE_CONFIG,
  gpt2Config,
  gpt2FromFiles,
  parseConfigJson,
  xlnetConfig,
  xlnetFromFiles,
  type GPT2LMHeadModel,
  type Tokenizer,
  type XLNetLMHeadModel,
} from '../../src/browser.js';

/** The model families the page runs; config.json's model_type says which (absent = gpt2, as Hugging Face). */
export type ModelType = 'gpt2' | 'xlnet';

/** GPT-2's vocabulary: GPT2-Chinese's vocab.txt (WordPiece), or byte-level BPE's encoder and merges. */
type Gpt2Vocab = { kind: 'wordpiece'; text: string } | { kind: 'bpe'; encoder: string; merges: string };

/** Everything a model needs, as bytes and text, kept so the model can be rebuilt (after a device loss). */
export type ModelFiles = {
  /** Where it came from, for messages: a folder name, a URL, "demo". */
  source: string;
  config: string;
  weights: Uint8Array;
  weightsName: string;
} & (
  | { type: 'gpt2'; vocab: Gpt2Vocab }
  /** XLNet's tokenizer: the SentencePiece model file, spiece.model. */
  | { type: 'xlnet'; spiece: Uint8Array }
);

/** A built model and its tokenizer, told apart by `type`. */
export type LoadedModel =
  | { type: 'gpt2'; model: GPT2LMHeadModel; tokenizer: Tokenizer }
  | { type: 'xlnet'; model: XLNetLMHeadModel; tokenizer: SentencePieceTokenizer };

const WEIGHT_NAMES = ['model.safetensors', 'pytorch_model.bin'];
const NEEDED: Record<ModelType, string> = {
  gpt2: 'A model folder has config.json, model.safetensors (or pytorch_model.bin) and vocab.txt (or vocab.json + merges.txt, or encoder.json + vocab.bpe; an XLNet has spiece.model instead)',
  xlnet: 'An XLNet model folder has config.json ("model_type": "xlnet"), model.safetensors (or pytorch_model.bin) and spiece.model (its SentencePiece tokenizer)',
};

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** config.json's model_type, refused unless the page runs it. */
function modelType(configText: string, source: string): ModelType {
  const type = parseConfigJson(configText, `${source}/config.json`).model_type ?? 'gpt2';
  if (type !== 'gpt2' && type !== 'xlnet') throw new Error(`${source}: model_type "${String(type)}" is not supported (supported: gpt2, xlnet)`);
  return type;
}

/** Picks a model's files out of name -> bytes (paths allowed; the first of each base name wins); config.json says which tokenizer files it needs. */
export function modelFilesFrom(files: ReadonlyMap<string, Uint8Array>, source: string): ModelFiles {
  const byName = new Map<string, Uint8Array>();
  for (const [path, bytes] of files) if (!byName.has(baseName(path))) byName.set(baseName(path), bytes);
  const config = byName.has('config.json') ? text(byName.get('config.json')!) : undefined;
  const type = config === undefined ? 'gpt2' : modelType(config, source);
  const weightsName = WEIGHT_NAMES.find((n) => byName.has(n));
  let vocab: Gpt2Vocab | undefined;
  if (byName.has('vocab.txt')) vocab = { kind: 'wordpiece', text: text(byName.get('vocab.txt')!) };
  else if (byName.has('vocab.json') && byName.has('merges.txt')) vocab = { kind: 'bpe', encoder: text(byName.get('vocab.json')!), merges: text(byName.get('merges.txt')!) };
  else if (byName.has('encoder.json') && byName.has('vocab.bpe')) vocab = { kind: 'bpe', encoder: text(byName.get('encoder.json')!), merges: text(byName.get('vocab.bpe')!) };
  const spiece = byName.get('spiece.model');
  const tokenizerMissing = type === 'xlnet' ? !spiece && 'spiece.model' : !vocab && 'a vocabulary';
  const missing = [config === undefined && 'config.json', !weightsName && 'model.safetensors', tokenizerMissing].filter(Boolean);
  if (missing.length > 0) {
    const seen = [...byName.keys()].slice(0, 12).join(', ') || 'no files';
    throw new Error(`${source}: missing ${missing.join(', ')}.\n${NEEDED[type]}; found ${seen}.`);
  }
  const common = { source, config: config!, weights: byName.get(weightsName!)!, weightsName: weightsName! };
  return type === 'xlnet' ? { ...common, type, spiece: spiece! } : { ...common, type, vocab: vocab! };
}

/** Files from a picker or a drop; a .zip among them is opened (a checkpoint this page downloaded). */
export async function readFileList(list: Iterable<File>, source: string): Promise<ModelFiles> {
  const files = new Map<string, Uint8Array>();
  for (const file of list) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const path = file.webkitRelativePath || file.name;
    if (file.name.endsWith('.zip')) {
      let entries: Record<string, Uint8Array>;
      try {
        entries = unzipSync(bytes);
      } catch (e) {
        throw new Error(`${file.name}: not a valid zip file (${(e as Error).message})`);
      }
      for (const [name, data] of Object.entries(entries)) files.set(name, data);
    } else {
      files.set(path, bytes);
    }
  }
  return modelFilesFrom(files, source);
}

/** All files of a drop, walking into dropped folders. */
export async function droppedFiles(items: DataTransferItemList): Promise<File[]> {
  const entries = [...items].map((item) => item.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      out.push(await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns a folder in chunks; an empty chunk ends it.
      for (;;) {
        const chunk = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (chunk.length === 0) break;
        for (const e of chunk) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

async function fetchBytes(url: string): Promise<Uint8Array | null> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** A model folder served over HTTP(S): config.json, then the first weight file and the tokenizer files (by model_type) that exist. */
export async function fetchModelFolder(url: string, source = url): Promise<ModelFiles> {
  const base = url.endsWith('/') ? url : `${url}/`;
  const files = new Map<string, Uint8Array>();
  const get = async (name: string): Promise<boolean> => {
    const bytes = await fetchBytes(new URL(name, new URL(base, location.href)).href);
    if (bytes) files.set(name, bytes);
    return bytes !== null;
  };
  if (!(await get('config.json'))) throw new Error(`${source}: no config.json there (is it a model folder?)`);
  for (const name of WEIGHT_NAMES) if (await get(name)) break;
  if (modelType(text(files.get('config.json')!), source) === 'xlnet') await get('spiece.model');
  else if (!(await get('vocab.txt'))) {
    if (!((await get('vocab.json')) && (await get('merges.txt')))) await Promise.all([get('encoder.json'), get('vocab.bpe')]);
  }
  return modelFilesFrom(files, source);
}

/** Builds the tokenizer and the model (on the GPU) from the files; checks that they fit each other. */
export function buildModel(files: ModelFiles): LoadedModel {
  const configWhere = `${files.source}/config.json`;
  if (files.type === 'xlnet') {
    let tokenizer: SentencePieceTokenizer;
    try {
      tokenizer = SentencePieceTokenizer.fromModelBytes(files.spiece, { mode: 'xlnet' });
    } catch (e) {
      throw new Error(`${files.source}: spiece.model: ${(e as Error).message}`);
    }
    checkVocab(files.source, tokenizer.vocabSize, xlnetConfig(parseConfigJson(files.config, configWhere)).vocab_size);
    const model = xlnetFromFiles(files.config, files.weights, files.weightsName, files.source);
    // A training checkpoint may still carry pretraining settings (reuse_len, bi_data) that decoding and filling refuse.
    Object.assign(model.config, XLNET_INFERENCE_CONFIG);
    return { type: 'xlnet', model: model.eval(), tokenizer };
  }
  const tokenizer: Tokenizer =
    files.vocab.kind === 'wordpiece'
      ? BertTokenizer.fromVocabText(files.vocab.text, { variant: 'gpt2-chinese' })
      : GPT2Tokenizer.fromFiles(files.vocab.encoder, files.vocab.merges);
  checkVocab(files.source, tokenizer.vocabSize, gpt2Config(parseConfigJson(files.config, configWhere)).vocab_size);
  const model = gpt2FromFiles(files.config, files.weights, files.weightsName, files.source);
  return { type: 'gpt2', model: model.eval(), tokenizer };
}

/** Refuses a tokenizer with ids past the model's embedding table (before any weight reaches the GPU). */
function checkVocab(source: string, tokens: number, vocabSize: number): void {
  if (tokens > vocabSize) throw new Error(`${source}: the vocabulary has ${tokens} tokens but config.json's vocab_size is ${vocabSize}`);
}
