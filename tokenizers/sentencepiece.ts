// SentencePiece unigram tokenizer (XLNet's spiece.model): the .model protobuf reader, the precompiled-charsmap normaliser, Viterbi segmentation, XLNet conventions.

import type { DecodeOptions, EncodeOptions, Tokenizer } from './index.js';
import { isPythonDigit } from './wordpiece.js';

// ---- protobuf: just enough of the wire format to read a ModelProto ----
//
// A message is a run of fields. Each starts with a varint key, field number << 3 | wire type, then the value:
// wire type 0 a varint, 1 eight fixed bytes, 2 a varint length then that many bytes (strings, bytes and
// sub-messages), 3 and 4 open and close a group (proto2's old nesting), 5 four fixed bytes. A varint stores
// 7 bits per byte, low bits first; a set high bit means another byte follows (at most 10 for 64 bits).
// The reader skips fields it does not know by their wire type, so models written by newer versions still load.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_GROUP_START = 3;
const WIRE_GROUP_END = 4;
const WIRE_FIXED32 = 5;

class ProtoReader {
  pos: number;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's [number, wire type]. */
  key(): [number, number] {
    const at = this.pos;
    const [lo, hi] = this.varint();
    const field = (lo >>> 3) + hi * 2 ** 29;
    const wire = lo & 7;
    if (field === 0) throw new Error(`field number 0 at byte ${at}`);
    if (wire > WIRE_FIXED32) throw new Error(`wire type ${wire} (field ${field}) at byte ${at}; protobuf has wire types 0-5`);
    return [field, wire];
  }

  /** int32 and enum fields: the low 32 bits as a signed number (a negative int32 is sent as a 10-byte varint). */
  int32(): number {
    return this.varint()[0] | 0;
  }

  bool(): boolean {
    const [lo, hi] = this.varint();
    return lo !== 0 || hi !== 0;
  }

  /** A little-endian IEEE float (wire type 5). */
  float(): number {
    const at = this.need(4);
    return this.view.getFloat32(at, true);
  }

  /** The payload of a length-delimited field (a view into the file, not a copy). */
  lengthDelimited(): Uint8Array {
    const [lo, hi] = this.varint();
    const length = lo + hi * 2 ** 32;
    const at = this.need(length);
    return this.bytes.subarray(at, at + length);
  }

  /** Skips a field's value; a group is skipped up to its matching end-group key. */
  skip(field: number, wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_FIXED64) this.need(8);
    else if (wire === WIRE_LENGTH) this.lengthDelimited();
    else if (wire === WIRE_FIXED32) this.need(4);
    else if (wire === WIRE_GROUP_END) throw new Error(`end of group ${field} at byte ${this.pos} without its start`);
    else {
      // Groups nest; an explicit stack of open field numbers keeps hostile input from overflowing the call stack.
      const open = [field];
      while (open.length > 0) {
        if (this.done()) throw new Error(`truncated: group ${open[open.length - 1]} is not closed before the end`);
        const [f, w] = this.key();
        if (w === WIRE_GROUP_START) open.push(f);
        else if (w === WIRE_GROUP_END) {
          if (open.pop() !== f) throw new Error(`end of group ${f} at byte ${this.pos} does not close the open group`);
        } else this.skip(f, w);
      }
    }
  }

  /** [low 32 bits, high 32 bits] of a varint, both unsigned. */
  private varint(): [number, number] {
    const at = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error(`truncated: a varint at byte ${at} runs past the end (${this.end} bytes)`);
      const byte = this.bytes[this.pos++];
      const bits = byte & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28; // bits 28-31 land in lo (the rest is shifted out), bits 32-34 in hi
        hi |= bits >>> 4;
      } else hi |= bits << (7 * i - 32);
      if (byte < 0x80) return [lo >>> 0, hi >>> 0];
    }
    throw new Error(`varint at byte ${at} is longer than 10 bytes`);
  }

  /** Claims `count` bytes at the current position and returns where they start. */
  private need(count: number): number {
    const at = this.pos;
    if (count > this.end - at) throw new Error(`truncated: a field of ${count} bytes at byte ${at} runs past the end (${this.end} bytes)`);
    this.pos += count;
    return at;
  }
}

// ---- ModelProto (sentencepiece_model.proto), the fields this tokenizer reads ----

/** SentencePiece.Type: how a piece takes part in encoding. */
export const PieceType = {
  /** An ordinary piece, found by the Viterbi search with its score. */
  NORMAL: 1,
  /** The unknown piece (`<unk>`), given to characters no piece covers. */
  UNKNOWN: 2,
  /** `<s>`, `<cls>`, …: never produced from text, decoded to nothing. */
  CONTROL: 3,
  /** Matched atomically wherever its text appears (`<eop>`), and passed around the normaliser untouched. */
  USER_DEFINED: 4,
  /** In the vocabulary but never chosen. */
  UNUSED: 5,
  /** `<0x41>`: one UTF-8 byte, for byte fallback. */
  BYTE: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

export interface SentencePieceEntry {
  piece: string;
  score: number;
  type: PieceType;
}

/** TrainerSpec.model_type: 1 UNIGRAM (the only one read here), 2 BPE, 3 WORD, 4 CHAR. */
const MODEL_TYPE_NAMES: Readonly<Record<number, string>> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const MODEL_TYPE_UNIGRAM = 1;

/** The parts of TrainerSpec (field numbers in the comments) that matter once a model is trained. */
export interface TrainerSpec {
  modelType: number; // 3, default UNIGRAM
  vocabSize: number; // 4
  controlSymbols: string[]; // 30
  userDefinedSymbols: string[]; // 31
  byteFallback: boolean; // 35: unknown characters become their UTF-8 byte pieces instead of <unk>
  /** 22; spm_train splits its sentences at spaces; unigram encoding does not look at it. */
  splitByWhitespace: boolean;
  treatWhitespaceAsSuffix: boolean; // 24: "▁" ends a word instead of starting it
  unkId: number; // 40, default 0
  bosId: number; // 41, default 1
  eosId: number; // 42, default 2
  padId: number; // 43, default -1 (none)
  unkSurface: string; // 44: what decode prints for <unk>, default " ⁇ "
  unkPiece: string; // 45
  bosPiece: string; // 46
  eosPiece: string; // 47
  padPiece: string; // 48
}

export interface NormalizerSpec {
  name: string; // 1: e.g. "nmt_nfkc", "identity"
  /** 2: the compiled normalisation rules (see CharsMap); empty for the identity normaliser. */
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean; // 3, default true: "▁" in front of the text, so the first word looks like every other
  removeExtraWhitespaces: boolean; // 4, default true: drop leading and trailing spaces, collapse runs to one
  escapeWhitespaces: boolean; // 5, default true: " " becomes "▁" (U+2581)
}

export interface ModelProto {
  pieces: SentencePieceEntry[]; // 1
  trainerSpec: TrainerSpec; // 2
  normalizerSpec: NormalizerSpec; // 3
  /** 5: rules applied to decoded text; present only for models trained with --decode_normalization_rule_name. */
  denormalizerSpec: NormalizerSpec | undefined;
}

const utf8 = new TextEncoder();
// fatal: a piece that is not UTF-8 means the file is not a model; ignoreBOM: a U+FEFF piece is text.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Reads a SentencePiece .model file (a serialized ModelProto). Throws a clear error for a file that is not one
 * (random bytes, JSON, a truncated copy); the parse is one pass over the bytes, so it cannot hang.
 */
export function parseModelProto(bytes: Uint8Array): ModelProto {
  const model: ModelProto = {
    pieces: [],
    trainerSpec: defaultTrainerSpec(),
    normalizerSpec: defaultNormalizerSpec(),
    denormalizerSpec: undefined,
  };
  try {
    readMessage(bytes, 0, bytes.length, (r, field, wire) => {
      if (field === 1 && wire === WIRE_LENGTH) model.pieces.push(readPiece(r.lengthDelimited()));
      else if (field === 2 && wire === WIRE_LENGTH) readTrainerSpec(r.lengthDelimited(), model.trainerSpec);
      else if (field === 3 && wire === WIRE_LENGTH) readNormalizerSpec(r.lengthDelimited(), model.normalizerSpec);
      else if (field === 5 && wire === WIRE_LENGTH) readNormalizerSpec(r.lengthDelimited(), (model.denormalizerSpec = defaultNormalizerSpec()));
      else return false;
      return true;
    });
  } catch (err) {
    throw new Error(`not a SentencePiece model (a ModelProto protobuf, the .model file): ${(err as Error).message}`);
  }
  if (model.pieces.length === 0) throw new Error('not a SentencePiece model (a ModelProto protobuf, the .model file): it has no pieces');
  return model;
}

/** Calls `onField` for each field of the message in bytes[start, end); a field it returns false for is skipped. */
function readMessage(bytes: Uint8Array, start: number, end: number, onField: (r: ProtoReader, field: number, wire: number) => boolean): void {
  const r = new ProtoReader(bytes, start, end);
  while (!r.done()) {
    const [field, wire] = r.key();
    if (!onField(r, field, wire)) r.skip(field, wire);
  }
}

function readString(r: ProtoReader): string {
  const at = r.pos;
  try {
    return strictUtf8.decode(r.lengthDelimited());
  } catch (err) {
    if (err instanceof TypeError) throw new Error(`the string at byte ${at} is not valid UTF-8`);
    throw err;
  }
}

function readPiece(bytes: Uint8Array): SentencePieceEntry {
  const entry: SentencePieceEntry = { piece: '', score: 0, type: PieceType.NORMAL };
  readMessage(bytes, 0, bytes.length, (r, field, wire) => {
    if (field === 1 && wire === WIRE_LENGTH) entry.piece = readString(r);
    else if (field === 2 && wire === WIRE_FIXED32) entry.score = r.float();
    else if (field === 3 && wire === WIRE_VARINT) {
      const type = r.int32();
      if (type < PieceType.NORMAL || type > PieceType.BYTE) throw new Error(`piece type ${type}; SentencePiece has types 1-6`);
      entry.type = type as PieceType;
    } else return false;
    return true;
  });
  return entry;
}

function defaultTrainerSpec(): TrainerSpec {
  return {
    modelType: MODEL_TYPE_UNIGRAM,
    vocabSize: 8000,
    controlSymbols: [],
    userDefinedSymbols: [],
    byteFallback: false,
    splitByWhitespace: true,
    treatWhitespaceAsSuffix: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
  };
}

function readTrainerSpec(bytes: Uint8Array, spec: TrainerSpec): void {
  const ints: Readonly<Record<number, 'modelType' | 'vocabSize' | 'unkId' | 'bosId' | 'eosId' | 'padId'>> = {
    3: 'modelType', 4: 'vocabSize', 40: 'unkId', 41: 'bosId', 42: 'eosId', 43: 'padId',
  };
  const bools: Readonly<Record<number, 'byteFallback' | 'splitByWhitespace' | 'treatWhitespaceAsSuffix'>> = {
    35: 'byteFallback', 22: 'splitByWhitespace', 24: 'treatWhitespaceAsSuffix',
  };
  const strings: Readonly<Record<number, 'unkSurface' | 'unkPiece' | 'bosPiece' | 'eosPiece' | 'padPiece'>> = {
    44: 'unkSurface', 45: 'unkPiece', 46: 'bosPiece', 47: 'eosPiece', 48: 'padPiece',
  };
  readMessage(bytes, 0, bytes.length, (r, field, wire) => {
    if (wire === WIRE_VARINT && ints[field] !== undefined) spec[ints[field]] = r.int32();
    else if (wire === WIRE_VARINT && bools[field] !== undefined) spec[bools[field]] = r.bool();
    else if (wire === WIRE_LENGTH && strings[field] !== undefined) spec[strings[field]] = readString(r);
    else if (wire === WIRE_LENGTH && field === 30) spec.controlSymbols.push(readString(r));
    else if (wire === WIRE_LENGTH && field === 31) spec.userDefinedSymbols.push(readString(r));
    else return false;
    return true;
  });
}

function defaultNormalizerSpec(): NormalizerSpec {
  return { name: '', precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
}

function readNormalizerSpec(bytes: Uint8Array, spec: NormalizerSpec): void {
  readMessage(bytes, 0, bytes.length, (r, field, wire) => {
    if (field === 1 && wire === WIRE_LENGTH) spec.name = readString(r);
    else if (field === 2 && wire === WIRE_LENGTH) spec.precompiledCharsmap = r.lengthDelimited();
    else if (field === 3 && wire === WIRE_VARINT) spec.addDummyPrefix = r.bool();
    else if (field === 4 && wire === WIRE_VARINT) spec.removeExtraWhitespaces = r.bool();
    else if (field === 5 && wire === WIRE_VARINT) spec.escapeWhitespaces = r.bool();
    else return false;
    return true;
  });
}

// ---- the precompiled charsmap: a Darts-clone double-array trie + the replacement strings ----

/**
 * A double-array trie (Darts-clone's layout), read-only. Each node is one 32-bit unit; the child of node n
 * for byte b sits at index (n ^ offset(n)) ^ b, and it really is that child when its label equals b (the
 * array is shared by all nodes, so the slot may belong to another). A node that ends a key has a leaf
 * child at (n ^ offset(n)) itself, label 0, whose unit holds the key's value. Unit bits:
 *   bit 31: the unit is a leaf (then bits 0-30 are the value; the label test then fails for every byte)
 *   bits 0-7: label;  bit 8: has a leaf child;  bits 10-31: offset, shifted left 8 more when bit 9 is set.
 */
class DoubleArray {
  constructor(private readonly units: Uint32Array) {}

  /**
   * The longest key that is a prefix of bytes[start, end), as [length, value], or undefined. Walks one unit
   * per byte and stops at the first byte with no child, so the cost is the match length, not the key count.
   */
  longestPrefix(bytes: Uint8Array, start: number, end: number): [number, number] | undefined {
    let found: [number, number] | undefined;
    let node = this.offsetOf(this.unit(0));
    for (let i = start; i < end; i++) {
      const byte = bytes[i];
      node ^= byte;
      const unit = this.unit(node);
      if ((unit & 0x800000ff) !== byte) break; // label mismatch (or a leaf): no key continues with this byte
      node ^= this.offsetOf(unit);
      if ((unit >>> 8) & 1) found = [i + 1 - start, this.unit(node) & 0x7fffffff];
    }
    return found;
  }

  private unit(index: number): number {
    const unit = this.units[index];
    if (unit === undefined) throw new Error(`SentencePiece charsmap trie is corrupt: unit ${index} is outside its ${this.units.length} units`);
    return unit;
  }

  private offsetOf(unit: number): number {
    return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
  }
}

/**
 * precompiled_charsmap: a uint32 (little-endian) byte size of the trie, the trie's units, then a blob of
 * NUL-terminated UTF-8 replacement strings. Trie keys are UTF-8 input sequences (one character, or several
 * where a rule needs context); a key's value is the offset of its replacement in the blob.
 */
class CharsMap {
  private readonly trie: DoubleArray;
  private readonly replacements: Uint8Array;

  constructor(blob: Uint8Array) {
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    if (blob.length <= 4) throw new Error(`SentencePiece charsmap is broken: ${blob.length} bytes, too short for its header`);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length - 4 || trieSize % 4 !== 0) {
      throw new Error(`SentencePiece charsmap is broken: a trie of ${trieSize} bytes does not fit its ${blob.length} bytes in whole 4-byte units`);
    }
    const units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
    this.trie = new DoubleArray(units);
    this.replacements = blob.subarray(4 + trieSize);
  }

  /** The longest rule at bytes[start…]: [input bytes it consumes, replacement bytes], or undefined. */
  match(bytes: Uint8Array, start: number): [number, Uint8Array] | undefined {
    const hit = this.trie.longestPrefix(bytes, start, bytes.length);
    if (hit === undefined) return undefined;
    const [length, offset] = hit;
    const stop = this.replacements.indexOf(0, offset);
    if (offset >= this.replacements.length || stop < 0) {
      throw new Error(`SentencePiece charsmap is corrupt: replacement at ${offset} is not a NUL-terminated string inside its ${this.replacements.length}-byte blob`);
    }
    return [length, this.replacements.subarray(offset, stop)];
  }
}

// ---- byte trie for pieces and user-defined symbols ----

/** A plain trie over UTF-8 bytes: node 0 is the root; edges live in one map keyed by node * 256 + byte. */
class ByteTrie {
  private readonly edges = new Map<number, number>();
  private readonly values: number[] = [-1];

  insert(key: Uint8Array, value: number): void {
    let node = 0;
    for (const byte of key) {
      let next = this.edges.get(node * 256 + byte);
      if (next === undefined) {
        next = this.values.length;
        this.values.push(-1);
        this.edges.set(node * 256 + byte, next);
      }
      node = next;
    }
    this.values[node] = value;
  }

  /** The child of `node` along `byte`, or -1. */
  child(node: number, byte: number): number {
    return this.edges.get(node * 256 + byte) ?? -1;
  }

  /** The value of the key ending at `node`, or -1 when no key ends there. */
  value(node: number): number {
    return this.values[node];
  }

  /** Byte length of the longest key that is a prefix of bytes[start…], or 0. */
  longestPrefix(bytes: Uint8Array, start: number): number {
    let longest = 0;
    for (let i = start, node = 0; i < bytes.length; i++) {
      node = this.child(node, bytes[i]);
      if (node < 0) break;
      if (this.value(node) >= 0) longest = i + 1 - start;
    }
    return longest;
  }
}

/** Bytes in the UTF-8 character that starts with `lead` (input here is always well-formed UTF-8). */
function utf8Length(lead: number): number {
  return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** "▁" (U+2581 LOWER ONE EIGHTH BLOCK): SentencePiece's visible space. */
const SPACE_SYMBOL = '\u2581';
const SPACE_SYMBOL_BYTES = utf8.encode(SPACE_SYMBOL);
const SPACE = 0x20;

// ---- the normaliser ----

export interface NormalizerOptions {
  /** User-defined symbols pass through unchanged (sentencepiece's PrefixMatcher); the longest one wins. */
  userDefinedSymbols?: readonly string[];
  /** trainer_spec.treat_whitespace_as_suffix: the dummy "▁" goes at the end instead of the start. */
  treatWhitespaceAsSuffix?: boolean;
}

/**
 * sentencepiece's Normalizer::Normalize. The text is consumed from the left, one rule at a time:
 * 1. a user-defined symbol at this point is copied as it is;
 * 2. else the longest charsmap rule replaces its input (nmt_nfkc: NFKC plus "\n", "\t", U+3000 … -> " ",
 *    control characters -> nothing);
 * 3. else one character is copied.
 * Around that, remove_extra_whitespaces drops spaces at the start and the end and keeps only the first of a
 * run (a space is dropped when the output so far ends with one); add_dummy_prefix puts "▁" in front of a
 * non-empty result; escape_whitespaces writes every " " as "▁".
 */
export class SentencePieceNormalizer {
  private readonly charsMap: CharsMap | undefined;
  private readonly userDefined = new ByteTrie();
  private readonly space: Uint8Array;

  constructor(
    private readonly spec: NormalizerSpec,
    private readonly options: NormalizerOptions = {},
  ) {
    this.charsMap = spec.precompiledCharsmap.length > 0 ? new CharsMap(spec.precompiledCharsmap) : undefined;
    for (const symbol of options.userDefinedSymbols ?? []) this.userDefined.insert(utf8.encode(symbol), 1);
    this.space = spec.escapeWhitespaces ? SPACE_SYMBOL_BYTES : Uint8Array.of(SPACE);
  }

  /** The normalised text, "▁" and all: what spm_normalize prints and what the pieces are cut from. */
  normalize(text: string): string {
    return lenientUtf8.decode(this.normalizeUtf8(text));
  }

  /** normalize() as UTF-8 bytes. */
  normalizeUtf8(text: string): Uint8Array {
    // TextEncoder writes a lone surrogate as U+FFFD, so the input is well-formed UTF-8 (sentencepiece would
    // turn each malformed byte into U+FFFD; nothing here can produce one).
    const input = utf8.encode(text);
    const removeExtra = this.spec.removeExtraWhitespaces;
    let pos = 0;
    while (removeExtra && pos < input.length) {
      const [consumed, replacement] = this.rule(input, pos);
      if (!isOneSpace(replacement)) break;
      pos += consumed;
    }
    if (pos === input.length) return new Uint8Array(0);

    const out: number[] = [];
    const suffix = this.options.treatWhitespaceAsSuffix ?? false;
    if (this.spec.addDummyPrefix && !suffix) out.push(...this.space);
    let afterSpace = removeExtra; // the output ends with a space that makes further ones redundant
    while (pos < input.length) {
      const [consumed, replacement] = this.rule(input, pos);
      let i = 0;
      if (afterSpace) while (i < replacement.length && replacement[i] === SPACE) i++;
      if (i < replacement.length) {
        for (; i < replacement.length; i++) {
          if (replacement[i] === SPACE && this.spec.escapeWhitespaces) out.push(...SPACE_SYMBOL_BYTES);
          else out.push(replacement[i]);
        }
        afterSpace = removeExtra && replacement[replacement.length - 1] === SPACE;
      }
      pos += consumed;
    }
    if (removeExtra) {
      while (out.length >= this.space.length && this.space.every((b, k) => out[out.length - this.space.length + k] === b)) out.length -= this.space.length;
    }
    if (this.spec.addDummyPrefix && suffix) out.push(...this.space);
    return Uint8Array.from(out);
  }

  /** The rule that applies at input[pos]: [bytes consumed, replacement bytes] (sentencepiece's NormalizePrefix). */
  private rule(input: Uint8Array, pos: number): [number, Uint8Array] {
    const symbol = this.userDefined.longestPrefix(input, pos);
    if (symbol > 0) return [symbol, input.subarray(pos, pos + symbol)];
    const hit = this.charsMap?.match(input, pos);
    if (hit !== undefined) return hit;
    const length = utf8Length(input[pos]);
    return [length, input.subarray(pos, pos + length)];
  }
}

function isOneSpace(bytes: Uint8Array): boolean {
  return bytes.length === 1 && bytes[0] === SPACE;
}

// ---- the tokenizer ----

/**
 * 'sentencepiece' (default): exactly the sentencepiece library's `encode` (what spm_encode and
 * `sp.encode(text)` give): no special tokens added, `<cls>`/`<sep>`/`<mask>` written in the text are text.
 * 'xlnet': Hugging Face XLNetTokenizer: its text preprocessing, special tokens in the text kept whole,
 * "▁123," split as "▁123" ",", and `X <sep> <cls>` added by `encode` unless told otherwise.
 */
export type SentencePieceMode = 'sentencepiece' | 'xlnet';

export interface SentencePieceTokenizerOptions {
  mode?: SentencePieceMode;
  /** xlnet mode: lower-case the text (HF do_lower_case). Default false. */
  doLowerCase?: boolean;
  /** xlnet mode: strip the text and collapse whitespace runs to one space (HF remove_space). Default true. */
  removeSpace?: boolean;
  /** xlnet mode: keep accents; false (the default, HF keep_accents) applies NFKD and drops combining marks. */
  keepAccents?: boolean;
}

/** XLNet's input layout for one text or a pair (what HF's XLNetTokenizer returns for model input). */
export interface XLNetInputs {
  /** `A <sep> <cls>` or `A <sep> B <sep> <cls>`, left-padded with `<pad>`. */
  inputIds: number[];
  /** 0 for A and its <sep>, 1 for B and its <sep>, 2 for <cls>, 3 for padding. */
  tokenTypeIds: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
}

export interface XLNetInputOptions {
  /** Left-pad to this many tokens, so `<cls>` stays last (XLNet summarises the sequence at the last position). */
  padToLength?: number;
}

/** The special tokens of HF's XLNetTokenizer, besides the unk/bos/eos/pad pieces named in the trainer spec. */
const XLNET_SPECIAL_PIECES = ['<sep>', '<cls>', '<mask>', '<eop>', '<eod>'] as const;
/** Token type of XLNet's padding (HF XLNetTokenizer.pad_token_type_id). */
const XLNET_PAD_TYPE = 3;
/** sentencepiece's unknown-character score is the lowest piece score minus this. */
const UNK_PENALTY = 10;
/** C's FLT_MIN and FLT_MAX: sentencepiece starts its max and min piece scores there. */
const FLT_MIN = 1.1754943508222875e-38;
const FLT_MAX = 3.4028234663852886e38;
/** Python's str.split() whitespace (JS \s lacks U+001C-U+001F and U+0085 and has U+FEFF). */
const PY_SPACES = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const PY_TRAILING_SPACES = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/;

/** One token of an encoding: its piece (for an unknown run, the normalised text it covers) and its id. */
interface Token {
  piece: string;
  id: number;
}

export class SentencePieceTokenizer implements Tokenizer {
  readonly mode: SentencePieceMode;
  readonly vocabSize: number;
  readonly unkTokenId: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly clsTokenId: number | undefined;
  readonly sepTokenId: number | undefined;
  readonly maskTokenId: number | undefined;
  /** XLNet's end-of-paragraph and end-of-document tokens. */
  readonly eopTokenId: number | undefined;
  readonly eodTokenId: number | undefined;
  readonly model: ModelProto;
  readonly normalizer: SentencePieceNormalizer;

  private readonly pieces: readonly string[];
  private readonly types: Uint8Array;
  private readonly scores: Float32Array;
  private readonly pieceIds = new Map<string, number>();
  /** NORMAL, USER_DEFINED and UNUSED pieces by their UTF-8 bytes: what the Viterbi search can match. */
  private readonly trie = new ByteTrie();
  /** Byte fallback: the id of each byte's <0xXX> piece; undefined when the model has no byte fallback. */
  private readonly byteIds: Int32Array | undefined;
  private readonly byteOfId = new Map<number, number>();
  private readonly maxScore: number;
  private readonly unkScore: number;
  /** Ids dropped by decode's skipSpecialTokens: <unk>, the control pieces and XLNet's named specials. */
  private readonly specialIds: ReadonlySet<number>;
  /** xlnet mode: the special tokens cut out of the text before encoding (HF's no-split tokens). */
  private readonly xlnetSpecials: ReadonlySet<string>;
  private readonly xlnetSplit: RegExp | undefined;
  private readonly doLowerCase: boolean;
  private readonly removeSpace: boolean;
  private readonly keepAccents: boolean;

  constructor(model: ModelProto, options: SentencePieceTokenizerOptions = {}) {
    const { trainerSpec } = model;
    if (trainerSpec.modelType !== MODEL_TYPE_UNIGRAM) {
      const name = MODEL_TYPE_NAMES[trainerSpec.modelType] ?? `type ${trainerSpec.modelType}`;
      throw new Error(`SentencePiece model is ${name}; only unigram models (trainer_spec.model_type UNIGRAM) are supported`);
    }
    if (model.denormalizerSpec !== undefined && model.denormalizerSpec.precompiledCharsmap.length > 0) {
      throw new Error('SentencePiece model has decode-time normalisation rules (denormalizer_spec), which this tokenizer does not apply');
    }
    this.model = model;
    this.mode = options.mode ?? 'sentencepiece';
    this.doLowerCase = options.doLowerCase ?? false;
    this.removeSpace = options.removeSpace ?? true;
    this.keepAccents = options.keepAccents ?? false;

    const n = model.pieces.length;
    this.vocabSize = n;
    this.pieces = model.pieces.map((p) => p.piece);
    this.types = Uint8Array.from(model.pieces, (p) => p.type);
    this.scores = Float32Array.from(model.pieces, (p) => p.score);
    let unk: number | undefined;
    let minScore = FLT_MAX;
    let maxScore = FLT_MIN;
    const userDefined: string[] = [];
    const byteIds = new Int32Array(256).fill(-1);
    model.pieces.forEach(({ piece, score, type }, id) => {
      if (piece === '') throw new Error(`SentencePiece model: piece ${id} is empty`);
      const earlier = this.pieceIds.get(piece);
      if (earlier !== undefined) throw new Error(`SentencePiece model: piece ${JSON.stringify(piece)} appears twice (ids ${earlier} and ${id})`);
      this.pieceIds.set(piece, id);
      if (type === PieceType.NORMAL) {
        minScore = Math.min(minScore, score);
        maxScore = Math.max(maxScore, score);
      }
      if (type === PieceType.NORMAL || type === PieceType.USER_DEFINED || type === PieceType.UNUSED) this.trie.insert(utf8.encode(piece), id);
      if (type === PieceType.USER_DEFINED) userDefined.push(piece);
      if (type === PieceType.UNKNOWN) {
        if (unk !== undefined) throw new Error(`SentencePiece model has two unknown pieces (ids ${unk} and ${id})`);
        unk = id;
      }
      if (type === PieceType.BYTE) {
        if (!trainerSpec.byteFallback) throw new Error(`SentencePiece model has byte piece ${piece} (id ${id}) but byte_fallback is off`);
        const match = /^<0x([0-9A-F]{2})>$/.exec(piece);
        if (match === null) throw new Error(`SentencePiece model: byte piece ${JSON.stringify(piece)} (id ${id}) is not of the form <0xXX>`);
        const byte = parseInt(match[1], 16);
        byteIds[byte] = id;
        this.byteOfId.set(id, byte);
      }
    });
    if (unk === undefined) throw new Error('SentencePiece model has no unknown piece (type UNKNOWN); unknown characters need one');
    if (trainerSpec.byteFallback) {
      const missing = byteIds.indexOf(-1);
      if (missing >= 0) throw new Error(`SentencePiece model has byte_fallback on but no piece for byte ${missing}`);
    }
    this.byteIds = trainerSpec.byteFallback ? byteIds : undefined;
    this.unkTokenId = unk;
    // Scores are float32 in the model and sentencepiece adds them in float32; fround keeps the same numbers.
    this.maxScore = Math.fround(maxScore);
    this.unkScore = Math.fround(Math.fround(minScore) - UNK_PENALTY);
    this.normalizer = new SentencePieceNormalizer(model.normalizerSpec, {
      userDefinedSymbols: userDefined,
      treatWhitespaceAsSuffix: trainerSpec.treatWhitespaceAsSuffix,
    });

    this.bosTokenId = this.pieceIds.get(trainerSpec.bosPiece);
    this.eosTokenId = this.pieceIds.get(trainerSpec.eosPiece);
    this.padTokenId = this.pieceIds.get(trainerSpec.padPiece);
    this.sepTokenId = this.pieceIds.get('<sep>');
    this.clsTokenId = this.pieceIds.get('<cls>');
    this.maskTokenId = this.pieceIds.get('<mask>');
    this.eopTokenId = this.pieceIds.get('<eop>');
    this.eodTokenId = this.pieceIds.get('<eod>');
    const named = [trainerSpec.unkPiece, trainerSpec.bosPiece, trainerSpec.eosPiece, trainerSpec.padPiece, ...XLNET_SPECIAL_PIECES];
    this.xlnetSpecials = new Set(named.filter((p) => this.pieceIds.has(p)));
    this.xlnetSplit = this.xlnetSpecials.size === 0
      ? undefined
      : new RegExp(`(${[...this.xlnetSpecials].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`);
    const special = new Set<number>([unk]);
    this.types.forEach((type, id) => {
      if (type === PieceType.CONTROL) special.add(id);
    });
    for (const piece of this.xlnetSpecials) special.add(this.pieceIds.get(piece)!);
    this.specialIds = special;
  }

  /** From the bytes of a .model file (spiece.model). */
  static fromModelBytes(bytes: Uint8Array, options: SentencePieceTokenizerOptions = {}): SentencePieceTokenizer {
    return new SentencePieceTokenizer(parseModelProto(bytes), options);
  }

  /** The text as the model sees it: normalised, spaces as "▁", with the dummy prefix. */
  normalize(text: string): string {
    return this.normalizer.normalize(text);
  }

  /** Pieces, e.g. "春花秋月何时了" -> ["▁", "春", "花", "秋", "月", "何时", "了"]; an unknown run shows its text. */
  tokenize(text: string): string[] {
    return this.mode === 'xlnet' ? this.xlnetTokenize(text) : this.encodeTokens(text).map((t) => t.piece);
  }

  /**
   * Ids. `addSpecialTokens` appends XLNet's `<sep> <cls>`; it defaults to what the original library does:
   * false for 'sentencepiece' (sp.encode), true for 'xlnet' (HF XLNetTokenizer.encode).
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.mode === 'xlnet'
      ? this.xlnetTokenize(text).map((piece) => this.pieceIds.get(piece) ?? this.unkTokenId)
      : this.encodeTokens(text).map((t) => t.id);
    return (options.addSpecialTokens ?? this.mode === 'xlnet') ? this.xlnetInputs(ids).inputIds : ids;
  }

  /** One text or a pair in XLNet's layout (special tokens at the end, padding on the left). */
  encodeXLNet(textA: string, textB?: string, options: XLNetInputOptions = {}): XLNetInputs {
    const a = this.encode(textA, { addSpecialTokens: false });
    return this.xlnetInputs(a, textB === undefined ? undefined : this.encode(textB, { addSpecialTokens: false }), options);
  }

  /**
   * XLNet's layout around ids that have no special tokens yet (HF build_inputs_with_special_tokens,
   * create_token_type_ids_from_sequences and left padding): `A <sep> <cls>` with types 0…0 2, or
   * `A <sep> B <sep> <cls>` with types 0…0 1…1 2; padding goes in front with type 3 and mask 0.
   */
  xlnetInputs(idsA: readonly number[], idsB?: readonly number[], options: XLNetInputOptions = {}): XLNetInputs {
    const sep = this.sepTokenId;
    const cls = this.clsTokenId;
    if (sep === undefined || cls === undefined) throw new Error('XLNet special tokens need <sep> and <cls> in the vocabulary');
    const inputIds = [...idsA, sep];
    const tokenTypeIds = inputIds.map(() => 0);
    if (idsB !== undefined) {
      inputIds.push(...idsB, sep);
      tokenTypeIds.push(...idsB.map(() => 1), 1);
    }
    inputIds.push(cls);
    tokenTypeIds.push(2);
    const attentionMask = inputIds.map(() => 1);
    const padLength = options.padToLength;
    if (padLength === undefined || padLength === inputIds.length) return { inputIds, tokenTypeIds, attentionMask };
    if (!Number.isInteger(padLength) || padLength < inputIds.length) {
      throw new RangeError(`padToLength ${padLength} is not a whole number of at least the ${inputIds.length} tokens of this input; truncate the texts first`);
    }
    if (this.padTokenId === undefined) throw new Error('padding needs a <pad> piece in the vocabulary');
    const pad = padLength - inputIds.length;
    return {
      inputIds: [...new Array<number>(pad).fill(this.padTokenId), ...inputIds],
      tokenTypeIds: [...new Array<number>(pad).fill(XLNET_PAD_TYPE), ...tokenTypeIds],
      attentionMask: [...new Array<number>(pad).fill(0), ...attentionMask],
    };
  }

  /**
   * sentencepiece's decode: pieces joined, "▁" -> " ", the leading "▁" of the first piece that writes text
   * removed (the dummy prefix); control tokens (<s>, <cls>, <sep>, …) write nothing; <unk> writes the
   * model's unk_surface (" ⁇ "); runs of byte pieces are reassembled into UTF-8, each malformed byte as
   * U+FFFD. skipSpecialTokens also drops <unk> and XLNet's named specials (<eop>, <eod>), as HF does.
   * In both modes this is sentencepiece's decode; HF XLNetTokenizer.decode prints control tokens as text.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const tokens: Token[] = [];
    for (const id of ids) {
      const piece = this.idToToken(id);
      if (piece === undefined) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      if (!(options.skipSpecialTokens && this.specialIds.has(id))) tokens.push({ piece, id });
    }
    return this.decodeTokens(tokens);
  }

  /**
   * sentencepiece's decode_pieces: like decode, but from piece strings, where an unknown run keeps its
   * text. So decodePieces(tokenize(x)) gives the normalised text back even where decode(encode(x)) has " ⁇ ",
   * except where unknown text spells a control piece ("<mask>" typed in the text): pieces are looked up by
   * name, and a control piece writes nothing.
   */
  decodePieces(pieces: readonly string[]): string {
    return this.decodeTokens(pieces.map((piece) => ({ piece, id: this.pieceIds.get(piece) ?? this.unkTokenId })));
  }

  tokenToId(token: string): number | undefined {
    return this.pieceIds.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) ? this.pieces[id] : undefined;
  }

  /**
   * sentencepiece's encode: normalise, find the best segmentation, then either merge each run of unknown
   * characters into one <unk> token (its piece is the run's text) or, with byte fallback, spell every
   * unknown character as its UTF-8 byte pieces.
   */
  private encodeTokens(text: string): Token[] {
    const normalized = this.normalizer.normalizeUtf8(text);
    const tokens: Token[] = [];
    let previousUnknown = false;
    for (const [start, end, id] of this.viterbi(normalized)) {
      const unknown = id === this.unkTokenId;
      if (unknown && this.byteIds !== undefined) {
        for (let i = start; i < end; i++) tokens.push({ piece: this.pieces[this.byteIds[normalized[i]]], id: this.byteIds[normalized[i]] });
      } else if (unknown) {
        const piece = lenientUtf8.decode(normalized.subarray(start, end));
        if (previousUnknown) tokens[tokens.length - 1].piece += piece;
        else tokens.push({ piece, id });
      } else tokens.push({ piece: this.pieces[id], id });
      previousUnknown = unknown;
    }
    return tokens;
  }

  /**
   * The unigram model's best segmentation of the normalised bytes, as [start, end, id] triples.
   *
   * Every piece that occurs in the text is an edge of a lattice from its start to its end position; a
   * segmentation is a path from 0 to the end, scored by the sum of its pieces' log-probabilities (the model's
   * scores). Viterbi: the best path ending at position e extends the best path ending at some start s by one
   * piece s..e, so one pass from left to right keeps, for each position, only the best score reaching it and
   * the last piece of that path; the segmentation is then read backwards from the end.
   *
   * Details that decide which of equal paths wins, and how unknown text is covered, follow sentencepiece's
   * optimised encoder (unigram_model.cc, EncodeOptimized) exactly:
   * - pieces are found by walking the trie from each character start, shortest first, and a candidate replaces
   *   the best at its end only when strictly better, so among equal scores the one from the earliest start wins;
   * - a position whose character starts no piece gets an unknown edge of that one character, scored as the
   *   lowest piece score minus 10 (so any known covering beats it);
   * - user-defined pieces score (byte length × highest piece score) − 0.1, which, since the highest score is
   *   at least FLT_MIN (C's smallest positive float) and usually below 0, is −0.1: above every real piece, so
   *   they are always chosen;
   * - candidate scores are computed in double and stored in float32, unknown edges in float32 throughout.
   */
  private viterbi(text: Uint8Array): [number, number, number][] {
    const n = text.length;
    const bestScore = new Float64Array(n + 1); // float32 values; bestScore[0] = 0, the empty path
    const bestStart = new Int32Array(n + 1).fill(-1); // start of the last piece of the best path ending here
    const bestId = new Int32Array(n + 1);
    const offer = (start: number, end: number, id: number, score: number): void => {
      if (bestStart[end] < 0 || score > bestScore[end]) {
        bestScore[end] = Math.fround(score);
        bestStart[end] = start;
        bestId[end] = id;
      }
    };
    for (let start = 0; start < n; ) {
      const charLength = Math.min(utf8Length(text[start]), n - start);
      const before = bestScore[start];
      let coversChar = false;
      for (let end = start, node = 0; end < n; ) {
        node = this.trie.child(node, text[end++]);
        if (node < 0) break;
        const id = this.trie.value(node);
        if (id < 0 || this.types[id] === PieceType.UNUSED) continue;
        const score = this.types[id] === PieceType.USER_DEFINED ? Math.fround((end - start) * this.maxScore) - 0.1 : this.scores[id];
        offer(start, end, id, score + before);
        if (end - start === charLength) coversChar = true;
      }
      if (!coversChar) offer(start, start + charLength, this.unkTokenId, Math.fround(this.unkScore + before));
      start += charLength;
    }
    const path: [number, number, number][] = [];
    for (let end = n; end > 0; end = bestStart[end]) path.push([bestStart[end], end, bestId[end]]);
    return path.reverse();
  }

  /** sentencepiece's Decode loop (see decode). */
  private decodeTokens(tokens: readonly Token[]): string {
    const { addDummyPrefix, removeExtraWhitespaces } = this.model.normalizerSpec;
    let text = '';
    let atStart = true; // nothing written yet: a leading "▁" is the dummy prefix
    const bytes: number[] = [];
    const write = (surface: string): void => {
      text += surface;
      if (surface !== '') atStart = false;
    };
    const flushBytes = (): void => {
      if (bytes.length > 0) write(decodeUtf8PerByte(bytes));
      bytes.length = 0;
    };
    for (const { piece, id } of tokens) {
      const byte = this.byteOfId.get(id);
      if (byte !== undefined) {
        bytes.push(byte);
        continue;
      }
      flushBytes();
      const type = this.types[id];
      if (type === PieceType.CONTROL) continue;
      if (type === PieceType.UNKNOWN) {
        write(piece === this.pieces[id] ? this.model.trainerSpec.unkSurface : piece);
        continue;
      }
      const dropPrefix = atStart && (addDummyPrefix || removeExtraWhitespaces) && piece.startsWith(SPACE_SYMBOL);
      write((dropPrefix ? piece.slice(SPACE_SYMBOL.length) : piece).replaceAll(SPACE_SYMBOL, ' '));
    }
    flushBytes();
    return text;
  }

  /**
   * HF XLNetTokenizer.tokenize: special tokens in the text are cut out first and kept whole (`<mask>` also
   * eats the whitespace before it: HF's lstrip=True); each stretch of text between them is lower-cased if
   * asked, preprocessed (xlnetPreprocess) and encoded on its own, so each gets its own dummy "▁"; a piece
   * that ends in a digit and a comma ("▁123,") is encoded again without the comma, which becomes a piece of
   * its own. Pieces of unknown text stay as text (HF maps them to <unk> when turning them into ids).
   */
  private xlnetTokenize(text: string): string[] {
    const parts = this.xlnetSplit === undefined ? [text] : text.split(this.xlnetSplit);
    const out: string[] = [];
    parts.forEach((part, i) => {
      if (this.xlnetSpecials.has(part)) {
        out.push(part);
        return;
      }
      if (parts[i + 1] === '<mask>') part = part.replace(PY_TRAILING_SPACES, '');
      if (part === '') return;
      // HF lower-cases the text outside special tokens before splitting, and preprocess_text again after NFKD.
      const pieces = this.encodeTokens(this.xlnetPreprocess(this.doLowerCase ? part.toLowerCase() : part)).map((t) => t.piece);
      for (const piece of pieces) out.push(...this.splitDigitComma(piece));
    });
    return out;
  }

  /**
   * HF XLNetTokenizer.preprocess_text: remove_space strips the text and joins its words with single spaces;
   * `` and '' become "; unless keep_accents, NFKD and drop every character with a nonzero canonical
   * combining class ("café" -> "cafe", "ｶﾞ" -> "カ"); lower-case if do_lower_case.
   */
  private xlnetPreprocess(text: string): string {
    let out = this.removeSpace ? text.split(PY_SPACES).filter((word) => word !== '').join(' ') : text;
    out = out.replaceAll('``', '"').replaceAll("''", '"');
    if (!this.keepAccents) out = Array.from(out.normalize('NFKD')).filter((ch) => !isCombining(ch)).join('');
    return this.doLowerCase ? out.toLowerCase() : out;
  }

  /** "▁123," -> ["▁123", ","]: XLNet's fix for numbers followed by a comma (HF XLNetTokenizer._tokenize). */
  private splitDigitComma(piece: string): string[] {
    const chars = Array.from(piece);
    if (chars.length < 2 || chars[chars.length - 1] !== ',' || !isPythonDigit(chars[chars.length - 2])) return [piece];
    const pieces = this.encodeTokens(chars.slice(0, -1).join('').replaceAll(SPACE_SYMBOL, '')).map((t) => t.piece);
    // The re-encoding has its own dummy "▁"; a piece that did not start a word must not gain one.
    if (!piece.startsWith(SPACE_SYMBOL) && pieces.length > 0 && pieces[0].startsWith(SPACE_SYMBOL)) {
      if (pieces[0] === SPACE_SYMBOL) pieces.shift();
      else pieces[0] = pieces[0].slice(SPACE_SYMBOL.length);
    }
    pieces.push(',');
    return pieces;
  }
}

/**
 * UTF-8 bytes to text, one character at a time; a byte that does not start a well-formed character (bad
 * lead, missing continuation, overlong form, surrogate, past U+10FFFF) becomes one U+FFFD and decoding
 * resumes at the next byte. That is sentencepiece's rule for byte pieces (TextDecoder would give one U+FFFD
 * per maximal bad subsequence instead).
 */
function decodeUtf8PerByte(bytes: readonly number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i];
    const length = lead < 0x80 ? 1 : (lead & 0xe0) === 0xc0 ? 2 : (lead & 0xf0) === 0xe0 ? 3 : (lead & 0xf8) === 0xf0 ? 4 : 0;
    let cp = length === 1 ? lead : length === 0 ? -1 : lead & (0xff >> (length + 1));
    for (let k = 1; k < length && cp >= 0; k++) {
      const next = bytes[i + k];
      cp = next !== undefined && (next & 0xc0) === 0x80 ? (cp << 6) | (next & 0x3f) : -1;
    }
    const smallest = [0, 0, 0x80, 0x800, 0x10000][length];
    const valid = length > 0 && cp >= smallest && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    out += valid ? String.fromCodePoint(cp) : '\ufffd';
    i += valid ? length : 1;
  }
  return out;
}

/**
 * Python's unicodedata.combining(ch) != 0, which JS cannot ask directly. Canonical ordering can: NFD sorts
 * a run of combining characters by combining class, so a character with class 1-239 placed after U+0345
 * (class 240, the highest) moves in front of it, and one of class 0 stays. `ch` must be its own NFD, as
 * every character of an NFKD string is. BMP answers are remembered (0 unknown, 1 no, 2 yes).
 */
const combiningBmp = new Uint8Array(0x10000);

function isCombining(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if (cp < 0x300) return false;
  if (cp < 0x10000 && combiningBmp[cp] !== 0) return combiningBmp[cp] === 2;
  const probe = `\u0345${ch}`;
  const combining = cp === 0x345 || probe.normalize('NFD') !== probe;
  if (cp < 0x10000) combiningBmp[cp] = combining ? 2 : 1;
  return combining;
}
