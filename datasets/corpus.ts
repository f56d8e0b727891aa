// Reading a training corpus from disk (Node only): any format datasets/articles.ts parses, and the bundled Song-ci corpus.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { packageRoot } from '../src/io/fs.js';
import { parseCorpus } from './articles.js';

/** Path of the bundled Song-ci corpus (21,050 poems, MIT): the default training data. */
export function bundledCorpusPath(): string {
  return path.join(packageRoot(), 'datasets', 'data', 'songci.json.gz');
}

/** The articles of a corpus file (formats: parseCorpus in datasets/articles.ts). */
export async function readCorpus(file: string): Promise<string[]> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    throw new Error(`cannot read corpus ${file}: ${(e as Error).message}`);
  }
  return parseCorpus(bytes, file);
}
