// webgpu-lm for Node: everything in ./browser.js plus the parts that touch the file system (model folders, vocabularies, corpora).

export * from './browser.js';
export { loadPretrained, loadGpt2, savePretrained, type PretrainedModel } from './models/pretrained.js';
export { loadTokenizer, bundledVocabPath, type BundledVocab, type LoadTokenizerOptions } from '../tokenizers/node.js';
export { readCorpus, bundledCorpusPath } from '../datasets/corpus.js';
