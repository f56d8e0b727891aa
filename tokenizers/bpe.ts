// GPT-2 byte-level BPE (OpenAI encoder.py, HF GPT2Tokenizer): bytes-to-unicode map, pre-tokenization regex, ranked merges.

import type { DecodeOptions, EncodeOptions, Tokenizer } from './index.js';

export interface GPT2TokenizerOptions {
  /**
   * Recognise special tokens ("<|endoftext|>") written in the text and give them their special id, as HF's
   * GPT2Tokenizer does. Default false: encode them as ordinary text, as OpenAI's encoder.py and the npm
   * gpt-3-encoder do (and as the reference ids in shared/data/tokenizer-reference were made).
   */
  parseSpecialTokens?: boolean;
}

export interface GPT2EncodeOptions extends EncodeOptions {
  /** Per-call override of GPT2TokenizerOptions.parseSpecialTokens. */
  parseSpecialTokens?: boolean;
}

/**
 * bytes_to_unicode: a printable character for each of the 256 byte values, so BPE runs on strings without
 * whitespace or control characters. Printable Latin-1 bytes (! to ~, ¡ to ¬, ® to ÿ) stand for themselves;
 * the other 68 bytes take U+0100, U+0101, … in byte order (space 0x20 -> "Ġ", "\n" -> "Ċ").
 * Returns the character for byte b at index b.
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : 256 + n++));
  return chars;
}

/**
 * OpenAI's pre-tokenization pattern: English contractions, letter runs and digit runs (each with at most
 * one leading space), runs of other symbols, and whitespace, where a whitespace run gives its last space
 * to the following word (\s+(?!\S)). OpenAI ran it with Python's `regex` module, whose \s is Unicode
 * White_Space; JS \s differs (it lacks U+0085 and has U+FEFF), so the class is spelled \p{White_Space}.
 */
const GPT2_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** Splits text into the pieces BPE runs on; every character lands in exactly one piece, so joining them gives the text back. */
export function gpt2PreTokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

/**
 * Reads vocab.bpe / merges.txt: an optional "#version" first line, then one merge per line, "left right",
 * highest priority first. Returns the pairs in rank order.
 */
export function parseMerges(text: string): [string, string][] {
  const merges: [string, string][] = [];
  text.split('\n').forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || (i === 0 && trimmed.startsWith('#version'))) return;
    const parts = trimmed.split(/\s+/);
    if (parts.length !== 2) throw new Error(`BPE merges line ${i + 1}: expected two symbols separated by a space, got ${JSON.stringify(line)}`);
    merges.push([parts[0], parts[1]]);
  });
  if (merges.length === 0) throw new Error('BPE merges file has no merges');
  return merges;
}

/** How many distinct pre-tokenized words keep their BPE result (HF tokenizers' BPE cache holds 10 000 too). */
const CACHE_CAPACITY = 10_000;

export class GPT2Tokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padTokenId = undefined;
  readonly unkTokenId = undefined;
  readonly clsTokenId = undefined;
  readonly sepTokenId = undefined;
  readonly maskTokenId = undefined;
  readonly eosTokenId: number | undefined;

  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: readonly (string | undefined)[];
  /** Id of the token for each byte value (its bytesToUnicode character). */
  private readonly byteIds = new Int32Array(256);
  private readonly byteDecoder: ReadonlyMap<string, number>;
  /** Merges work on ids: pairRanks[left].get(right) is the rank of the merge, mergedIds[rank] the id it makes. */
  private readonly pairRanks: (Map<number, number> | undefined)[] = [];
  private readonly mergedIds: Int32Array;
  private readonly specialTokens: ReadonlyMap<string, number>;
  private readonly specialSplit: RegExp | undefined;
  private readonly parseSpecialTokens: boolean;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly textEncoder = new TextEncoder();
  // ignoreBOM: a leading U+FEFF is text here, not a byte-order mark to swallow (the round trip must be exact).
  private readonly textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** `encoder`: token -> id (encoder.json / vocab.json); `merges`: pairs in rank order (parseMerges). */
  constructor(encoder: Readonly<Record<string, number>>, merges: readonly (readonly [string, string])[], options: GPT2TokenizerOptions = {}) {
    const entries = Object.entries(encoder);
    if (entries.length === 0) throw new Error('BPE vocabulary is empty');
    const decoder: (string | undefined)[] = [];
    for (const [token, id] of entries) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`BPE vocabulary: token ${JSON.stringify(token)} has id ${id}, not a non-negative integer`);
      decoder[id] = token;
    }
    this.encoder = new Map(entries);
    this.decoder = decoder;
    this.vocabSize = decoder.length;

    const byteChars = bytesToUnicode();
    byteChars.forEach((ch, byte) => {
      const id = this.encoder.get(ch);
      if (id === undefined) throw new Error(`BPE vocabulary lacks ${JSON.stringify(ch)}, the symbol of byte ${byte}; a byte-level vocabulary has all 256`);
      this.byteIds[byte] = id;
    });
    this.byteDecoder = new Map(byteChars.map((ch, byte) => [ch, byte]));

    if (merges.length >= 2 ** 21) throw new Error(`BPE merges: ${merges.length} is more than the 2^21 this tokenizer orders exactly`);
    this.mergedIds = new Int32Array(merges.length);
    merges.forEach(([left, right], rank) => {
      const ids = [left, right, left + right].map((t) => this.encoder.get(t));
      if (ids.includes(undefined)) throw new Error(`BPE merge ${rank + 1} "${left} ${right}" uses or makes a token the vocabulary lacks`);
      // A pair listed twice keeps its last rank, as encoder.py's dict(zip(merges, range(...))) does.
      (this.pairRanks[ids[0]!] ??= new Map()).set(ids[1]!, rank);
      this.mergedIds[rank] = ids[2]!;
    });

    this.eosTokenId = this.encoder.get('<|endoftext|>');
    this.specialTokens = new Map(this.eosTokenId === undefined ? [] : [['<|endoftext|>', this.eosTokenId]]);
    this.specialSplit = this.specialTokens.size === 0
      ? undefined
      : new RegExp(`(${[...this.specialTokens.keys()].map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`);
    this.parseSpecialTokens = options.parseSpecialTokens ?? false;
  }

  /** From the text of encoder.json + vocab.bpe (OpenAI) or vocab.json + merges.txt (HF); same formats. */
  static fromFiles(encoderJson: string, mergesText: string, options: GPT2TokenizerOptions = {}): GPT2Tokenizer {
    let encoder: unknown;
    try {
      encoder = JSON.parse(encoderJson);
    } catch (err) {
      throw new Error(`BPE vocabulary is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof encoder !== 'object' || encoder === null || Array.isArray(encoder)) {
      throw new Error('BPE vocabulary must be a JSON object mapping token -> id');
    }
    return new GPT2Tokenizer(encoder as Record<string, number>, parseMerges(mergesText), options);
  }

  /** Byte-level token strings, e.g. "Hello world" -> ["Hello", "Ġworld"]. */
  tokenize(text: string): string[] {
    return this.encode(text).map((id) => this.decoder[id] as string);
  }

  /** GPT-2 adds no special tokens around a text (HF GPT2Tokenizer neither), so addSpecialTokens changes nothing. */
  encode(text: string, options: GPT2EncodeOptions = {}): number[] {
    const parse = options.parseSpecialTokens ?? this.parseSpecialTokens;
    const pieces = parse && this.specialSplit ? text.split(this.specialSplit) : [text];
    const ids: number[] = [];
    for (const piece of pieces) {
      const special = parse ? this.specialTokens.get(piece) : undefined;
      if (special !== undefined) {
        ids.push(special);
        continue;
      }
      for (const word of gpt2PreTokenize(piece)) for (const id of this.bpe(word)) ids.push(id);
    }
    return ids;
  }

  /** Exact inverse of encode for well-formed text; byte sequences cut mid-character decode to U+FFFD (as errors="replace"). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.textDecoder.decode(this.decodeBytes(ids, options));
  }

  /**
   * The UTF-8 bytes behind the ids. A CJK character or emoji usually spans several GPT-2 tokens, so a
   * streaming caller feeds these into `new TextDecoder().decode(bytes, { stream: true })` token by token
   * instead of decoding each token on its own.
   */
  decodeBytes(ids: readonly number[], options: DecodeOptions = {}): Uint8Array {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.idToToken(id);
      if (token === undefined) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      if (this.specialTokens.get(token) === id) {
        if (options.skipSpecialTokens) continue;
        bytes.push(...this.textEncoder.encode(token));
        continue;
      }
      for (const ch of token) {
        const byte = this.byteDecoder.get(ch);
        if (byte === undefined) throw new Error(`BPE token ${JSON.stringify(token)} (id ${id}) has a character outside the byte alphabet`);
        bytes.push(byte);
      }
    }
    return Uint8Array.from(bytes);
  }

  tokenToId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) ? this.decoder[id] : undefined;
  }

  /** Ids of one pre-tokenized word: UTF-8 bytes -> byte symbols -> ranked merges. */
  private bpe(word: string): readonly number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    // TextEncoder writes a lone surrogate as U+FFFD (EF BF BD); Python would refuse such a string.
    const ids = this.merge(Array.from(this.textEncoder.encode(word), (b) => this.byteIds[b]));
    if (this.cache.size < CACHE_CAPACITY) this.cache.set(word, ids);
    return ids;
  }

  /**
   * Applies merges lowest rank first, leftmost first, until no adjacent pair has a rank; encoder.py does the
   * same with a loop that rescans every pair after each merge (quadratic in the word length, and one GPT-2
   * "word" can be a whole paragraph of Chinese). Here the symbols form a linked list and candidate pairs sit
   * in a heap ordered by (rank, position), so a word costs O(n log n). The order is identical because a
   * merge can only create pairs that rank after it: the new symbol is made by this merge, so any merge
   * using it comes later in a learned merge list.
   */
  private merge(symbols: number[]): number[] {
    const n = symbols.length;
    if (n < 2) return symbols;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const rankAt = (i: number): number | undefined => (next[i] < 0 ? undefined : this.pairRanks[symbols[i]]?.get(symbols[next[i]]));
    const heap = new MinHeap();
    // rank * 2^32 + position: one number orders by rank, then leftmost (exact while rank < 2^21).
    const push = (i: number): void => {
      const rank = rankAt(i);
      if (rank !== undefined) heap.push(rank * 2 ** 32 + i);
    };
    for (let i = 0; i < n - 1; i++) push(i);
    for (let entry = heap.pop(); entry !== undefined; entry = heap.pop()) {
      const rank = Math.floor(entry / 2 ** 32);
      const left = entry - rank * 2 ** 32;
      // Skip stale entries: the left symbol was merged away (-1) or the pair there is no longer this merge.
      if (symbols[left] < 0 || rankAt(left) !== rank) continue;
      const right = next[left];
      symbols[left] = this.mergedIds[rank];
      symbols[right] = -1;
      next[left] = next[right];
      if (next[left] >= 0) prev[next[left]] = left;
      if (prev[left] >= 0) push(prev[left]);
      push(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(symbols[i]);
    return out;
  }
}

/** Binary min-heap of numbers. */
class MinHeap {
  private readonly items: number[] = [];

  push(item: number): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[i], a[parent]] = [a[parent], a[i]];
      i = parent;
    }
  }

  pop(): number | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
