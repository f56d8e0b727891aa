// webgpu-lm for Node: everything in ./browser.js plus the parts that touch the file system (model folders, vocabularies, corpora).

export * from './browser.js';
export { loadPretrained, loadGpt2, savePretrained, type PretrainedModel } from './models/pretrained.js';
export { loadTokenizer, bundledVocabPath, type BundledVocab, type LoadTokenizerOptions } from '../tokenizers/node.js';
export { readCorpus, bundledCorpusPath } from '../datasets/corpus.js';
// Also makes the file under ~/.cache/webgpu-lm the matmul tile cache (ops/matmul_tiles_node.ts).
export { tileCacheFile } from './ops/matmul_tiles_node.js';
