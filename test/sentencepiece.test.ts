// SentencePiece unigram: reference ids and pieces (../shared/data/tokenizer-reference), Song-ci round trips, XLNet layout, the protobuf reader, the charsmap normaliser, bad files.

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from './helpers.js';
import {
  PieceType,
  SentencePieceNormalizer,
  SentencePieceTokenizer,
  parseModelProto,
  type NormalizerSpec,
} from '../tokenizers/index.js';
import { bundledDataDir, bundledVocabPath, loadTokenizer } from '../tokenizers/node.js';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const REFERENCE = (
  JSON.parse(readFileSync(join(SHARED, 'data/tokenizer-reference/reference.json'), 'utf8')) as {
    songci_unigram_8k: Record<string, { ids: number[]; pieces: string[] }>;
  }
).songci_unigram_8k;
const MODEL_BYTES = new Uint8Array(readFileSync(join(SHARED, 'data/vocab/songci_unigram_8k.model')));

/** spm_train's own vocabulary export, read independently of the tokenizer: line i is "piece\tscore" of id i. */
const VOCAB = readFileSync(join(SHARED, 'data/vocab/songci_unigram_8k.vocab'), 'utf8')
  .split('\n')
  .filter((line) => line !== '')
  .map((line) => {
    const tab = line.lastIndexOf('\t');
    return { piece: line.slice(0, tab), score: Number(line.slice(tab + 1)) };
  });
const vocabId = (piece: string): number => {
  const id = VOCAB.findIndex((v) => v.piece === piece);
  if (id < 0) throw new Error(`test setup: ${piece} is not in songci_unigram_8k.vocab`);
  return id;
};

/** XLNet's special-token layout as docs/xlnet.md §7 states it ("Special ids: `<unk>`0 `<s>`1 …"). */
const XLNET_IDS = (() => {
  const line = readFileSync(join(SHARED, 'docs/xlnet.md'), 'utf8').split('\n').find((l) => l.includes('Special ids:'));
  if (line === undefined) throw new Error('test setup: docs/xlnet.md has no "Special ids:" line');
  return new Map([...line.matchAll(/`(<[^`]+>)`(\d+)/g)].map((m) => [m[1], Number(m[2])]));
})();

/** sentencepiece's default text for <unk> in decode (kDefaultUnknownSymbol, trainer_spec.unk_surface). */
const UNK_SURFACE = ' \u2047 ';

const plain = SentencePieceTokenizer.fromModelBytes(MODEL_BYTES);
const xlnet = SentencePieceTokenizer.fromModelBytes(MODEL_BYTES, { mode: 'xlnet' });

/**
 * What nmt_nfkc normalisation makes of plain text, from JS's own NFKC: NFKC, U+FFFD and whitespace runs as one
 * space, no space at either end (sentencepiece's nmt rules add the whitespace and U+FFFD mappings to NFKC).
 */
function nfkcText(text: string): string {
  return text.normalize('NFKC').replaceAll('\ufffd', ' ').split(/\s+/).filter((w) => w !== '').join(' ');
}

/** The text decode gives for reference pieces/ids: pieces joined, "▁" as space, the dummy prefix gone, <unk> as UNK_SURFACE. */
function decodedReference({ ids, pieces }: { ids: number[]; pieces: string[] }): string {
  return pieces
    .map((p, i) => (ids[i] === XLNET_IDS.get('<unk>') ? '\u0000' : p))
    .join('')
    .replaceAll('\u2581', ' ')
    .replace(/^ /, '')
    .replaceAll('\u0000', UNK_SURFACE);
}

// ---- protobuf writing for test models, independent of the reader under test ----

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const GROUP_START = 3;
const GROUP_END = 4;
const FIXED32 = 5;

function varint(value: number): number[] {
  let v = BigInt.asUintN(64, BigInt(value)); // negative int32 values go on the wire as 64-bit two's complement
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const tag = (field: number, wire: number): number[] => varint(field * 8 + wire);
const concat = (...parts: (readonly number[] | Uint8Array)[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const varintField = (field: number, value: number): Uint8Array => concat(tag(field, VARINT), varint(value));
const lenField = (field: number, payload: Uint8Array | string): Uint8Array => {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return concat(tag(field, LEN), varint(bytes.length), bytes);
};
const floatField = (field: number, value: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, value, true);
  return concat(tag(field, FIXED32), b);
};
/** ModelProto.pieces entry (field 1): piece (1), score (2), type (3; left out for NORMAL, the default). */
const pieceField = (piece: string, score: number, type?: number): Uint8Array =>
  lenField(1, concat(lenField(1, piece), floatField(2, score), type === undefined ? [] : varintField(3, type)));
/** Extra fields for ModelProto.trainer_spec (field 2). A message field given twice is merged (protobuf's rule), so appending one edits the model. */
const trainerSpecField = (...fields: Uint8Array[]): Uint8Array => lenField(2, concat(...fields));

describe('SentencePiece unigram: reference ids (sentencepiece library)', () => {
  it('gives the exact ids and pieces of every songci_unigram_8k reference string', () => {
    expect(Object.keys(REFERENCE).length).toBeGreaterThan(0);
    for (const [text, expected] of Object.entries(REFERENCE)) {
      expect(plain.encode(text), JSON.stringify(text)).toEqual(expected.ids);
      expect(plain.tokenize(text), JSON.stringify(text)).toEqual(expected.pieces);
    }
  });

  it('has the vocabulary of spm_train\'s .vocab export, ids, pieces and scores', () => {
    expect(plain.vocabSize).toBe(VOCAB.length);
    const model = parseModelProto(MODEL_BYTES);
    VOCAB.forEach(({ piece, score }, id) => {
      expect(plain.idToToken(id)).toBe(piece);
      expect(plain.tokenToId(piece)).toBe(id);
      // The .vocab file prints scores with 6 significant digits.
      expect(Math.abs(model.pieces[id].score - score)).toBeLessThanOrEqual(5e-6 * Math.max(1, Math.abs(score)));
    });
    expect(plain.idToToken(VOCAB.length)).toBeUndefined();
    expect(plain.tokenToId('no such piece')).toBeUndefined();
  });

  it('has XLNet\'s special ids (docs/xlnet.md §7)', () => {
    expect(XLNET_IDS.size).toBe(9);
    for (const [piece, id] of XLNET_IDS) expect(plain.tokenToId(piece), piece).toBe(id);
    expect([plain.unkTokenId, plain.bosTokenId, plain.eosTokenId]).toEqual(['<unk>', '<s>', '</s>'].map((p) => XLNET_IDS.get(p)));
    expect([plain.clsTokenId, plain.sepTokenId, plain.padTokenId, plain.maskTokenId]).toEqual(['<cls>', '<sep>', '<pad>', '<mask>'].map((p) => XLNET_IDS.get(p)));
    expect([plain.eodTokenId, plain.eopTokenId]).toEqual(['<eod>', '<eop>'].map((p) => XLNET_IDS.get(p)));
    const { trainerSpec } = parseModelProto(MODEL_BYTES);
    expect([trainerSpec.unkId, trainerSpec.bosId, trainerSpec.eosId]).toEqual([plain.unkTokenId, plain.bosTokenId, plain.eosTokenId]);
  });

  it('matches user-defined symbols in the text but not control symbols', () => {
    const model = parseModelProto(MODEL_BYTES);
    const eop = plain.eopTokenId!;
    const mask = plain.maskTokenId!;
    expect(model.pieces[eop].type).toBe(PieceType.USER_DEFINED);
    expect(model.pieces[mask].type).toBe(PieceType.CONTROL);
    expect(plain.encode('<eop><eop>')).toEqual([vocabId('\u2581'), eop, eop]);
    expect(plain.encode('<mask>')).not.toContain(mask);
  });
});

describe('SentencePiece decoding', () => {
  it('decodes the reference ids and pieces to the normalised text', () => {
    const controls = parseModelProto(MODEL_BYTES).trainerSpec.controlSymbols;
    for (const [text, expected] of Object.entries(REFERENCE)) {
      expect(plain.decode(expected.ids), JSON.stringify(text)).toBe(decodedReference(expected));
      if (!expected.ids.includes(plain.unkTokenId)) expect(plain.decode(plain.encode(text))).toBe(nfkcText(text));
      // decode_pieces looks pieces up by name, so unknown text that spells a control piece ("<mask>") writes nothing.
      if (controls.some((c) => expected.pieces.includes(c))) continue;
      expect(plain.decodePieces(expected.pieces), JSON.stringify(text)).toBe(nfkcText(text));
      expect(plain.decodePieces(plain.tokenize(text))).toBe(nfkcText(text));
    }
    expect(plain.decodePieces(['\u2581', 'a', '\u2581', '<mask>'])).toBe('a ');
  });

  it('round-trips a few hundred Song-ci poems', () => {
    const articles = JSON.parse(new TextDecoder().decode(gunzipSync(readFileSync(fileURLToPath(new URL('../datasets/data/songci.json.gz', import.meta.url)))))) as string[];
    const sample = articles.filter((_, i) => i % 50 === 0);
    let withoutUnk = 0;
    for (const article of sample) {
      const ids = plain.encode(article);
      const pieces = plain.tokenize(article);
      const text = nfkcText(article);
      expect(plain.normalize(article)).toBe(`\u2581${text.replaceAll(' ', '\u2581')}`);
      expect(pieces.join('')).toBe(plain.normalize(article));
      expect(plain.decodePieces(pieces)).toBe(text);
      if (!ids.includes(plain.unkTokenId)) {
        withoutUnk++;
        expect(plain.decode(ids)).toBe(text);
      }
    }
    expect(sample.length).toBeGreaterThan(400);
    expect(withoutUnk).toBeGreaterThan(sample.length * 0.9);
  });

  it('writes nothing for control tokens, drops only the first dummy "▁", and skips specials on request', () => {
    const [cls, sep, unk, eop] = [plain.clsTokenId!, plain.sepTokenId!, plain.unkTokenId, plain.eopTokenId!];
    const ids = plain.encode('春花秋月');
    const text = plain.decode(ids);
    expect(plain.decode([cls, ...ids, sep, cls])).toBe(text);
    expect(plain.decode([...ids, ...ids])).toBe(`${text} ${text}`);
    expect(plain.decode([...ids, unk, eop])).toBe(`${text}${UNK_SURFACE}<eop>`);
    expect(plain.decode([...ids, unk, eop, sep, cls], { skipSpecialTokens: true })).toBe(text);
    expect(() => plain.decode([plain.vocabSize])).toThrow(RangeError);
    expect(() => plain.decode([1.5])).toThrow(RangeError);
  });
});

describe('SentencePiece byte fallback', () => {
  // The songci model with byte_fallback on and the 256 pieces <0x00>…<0xFF> appended as ids V…V+255.
  const V = VOCAB.length;
  const byteName = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
  const bytes = concat(
    MODEL_BYTES,
    ...Array.from({ length: 256 }, (_, b) => pieceField(byteName(b), 0, PieceType.BYTE)),
    trainerSpecField(varintField(35, 1)),
  );
  const tok = SentencePieceTokenizer.fromModelBytes(bytes);

  it('spells each unknown character as its UTF-8 bytes instead of one <unk>', () => {
    for (const [text, expected] of Object.entries(REFERENCE)) {
      const ids = expected.ids.flatMap((id, i) => (id === 0 ? [...new TextEncoder().encode(expected.pieces[i])].map((b) => V + b) : [id]));
      const pieces = ids.map((id) => (id >= V ? byteName(id - V) : VOCAB[id].piece));
      expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
      expect(tok.tokenize(text)).toEqual(pieces);
      expect(tok.decode(ids)).toBe(nfkcText(text));
    }
  });

  it('decodes a malformed byte run with one U+FFFD per bad byte, as sentencepiece does', () => {
    const [e6, x97, a5] = [0xe6, 0x97, 0xa5].map((b) => V + b); // 日 is E6 97 A5
    expect(tok.decode([e6, x97, a5])).toBe('日');
    expect(tok.decode([e6, x97])).toBe('\ufffd\ufffd');
    expect(tok.decode([x97, e6, x97, a5])).toBe('\ufffd日');
  });

  it('requires all 256 byte pieces, and byte_fallback for byte pieces', () => {
    const missing = concat(MODEL_BYTES, pieceField('<0x41>', 0, PieceType.BYTE), trainerSpecField(varintField(35, 1)));
    expect(() => SentencePieceTokenizer.fromModelBytes(missing)).toThrow(/byte_fallback on but no piece for byte 0/);
    expect(() => SentencePieceTokenizer.fromModelBytes(concat(MODEL_BYTES, pieceField('<0x41>', 0, PieceType.BYTE)))).toThrow(/byte_fallback is off/);
  });
});

describe('SentencePiece XLNet conventions', () => {
  const [sep, cls, pad] = ['<sep>', '<cls>', '<pad>'].map((p) => XLNET_IDS.get(p)!);

  it('puts <sep> <cls> at the end, pairs as A <sep> B <sep> <cls>, with XLNet\'s token types', () => {
    const a = plain.encode('春花秋月');
    const b = plain.encode('往事知多少');
    expect(plain.encode('春花秋月', { addSpecialTokens: true })).toEqual([...a, sep, cls]);
    expect(xlnet.encode('春花秋月')).toEqual([...a, sep, cls]);
    expect(xlnet.encode('春花秋月', { addSpecialTokens: false })).toEqual(a);
    const pair = plain.encodeXLNet('春花秋月', '往事知多少');
    expect(pair.inputIds).toEqual([...a, sep, ...b, sep, cls]);
    expect(pair.tokenTypeIds).toEqual([...a.map(() => 0), 0, ...b.map(() => 1), 1, 2]);
    expect(pair.attentionMask).toEqual(pair.inputIds.map(() => 1));
  });

  it('pads on the left so <cls> stays last', () => {
    const a = plain.encode('春花秋月');
    const padded = plain.encodeXLNet('春花秋月', undefined, { padToLength: a.length + 5 });
    expect(padded.inputIds).toEqual([pad, pad, pad, ...a, sep, cls]);
    expect(padded.tokenTypeIds).toEqual([3, 3, 3, ...a.map(() => 0), 0, 2]);
    expect(padded.attentionMask).toEqual([0, 0, 0, ...a.map(() => 1), 1, 1]);
    expect(plain.xlnetInputs(a, [], { padToLength: a.length + 3 }).inputIds).toEqual([...a, sep, sep, cls]);
    expect(() => plain.encodeXLNet('春花秋月', undefined, { padToLength: a.length })).toThrow(/at least the .* tokens of this input/);
  });

  it('keeps special tokens in the text whole and encodes the text between them on its own', () => {
    const text = 'a<eop>b <mask> c<cls>';
    const expected = [...plain.tokenize('a'), '<eop>', ...plain.tokenize('b'), '<mask>', ...plain.tokenize(' c'), '<cls>'];
    expect(xlnet.tokenize(text)).toEqual(expected);
    expect(xlnet.encode(text, { addSpecialTokens: false })).toEqual(expected.map((p) => plain.tokenToId(p) ?? plain.unkTokenId));
    expect(xlnet.encode(text, { addSpecialTokens: false })).toContain(plain.maskTokenId);
  });

  it('preprocesses like HF XLNetTokenizer: whitespace, quotes, accents, optional lower case', () => {
    expect(xlnet.tokenize('  春花 \t\n 秋月  ')).toEqual(plain.tokenize('春花 秋月'));
    expect(xlnet.tokenize("``春''")).toEqual(plain.tokenize('"春"'));
    expect(xlnet.tokenize('cafe\u0301 café')).toEqual(plain.tokenize('cafe cafe'));
    expect(SentencePieceTokenizer.fromModelBytes(MODEL_BYTES, { mode: 'xlnet', keepAccents: true }).tokenize('café')).toEqual(plain.tokenize('café'));
    expect(SentencePieceTokenizer.fromModelBytes(MODEL_BYTES, { mode: 'xlnet', doLowerCase: true }).tokenize('ABC')).toEqual(plain.tokenize('abc'));
    const spaced = SentencePieceTokenizer.fromModelBytes(MODEL_BYTES, { mode: 'xlnet', removeSpace: false });
    expect(spaced.tokenize('春 \t<mask>')).toEqual([...plain.tokenize('春'), '<mask>']); // <mask> eats the space before it
  });

  it('splits a piece ending in a digit and a comma ("▁2026," -> "▁2026" ",")', () => {
    // The songci vocabulary has no such pieces, so four are appended (ids V…V+3).
    const added = ['\u25812026,', '\u25812026', '2026,', '2026'];
    const bytes = concat(MODEL_BYTES, ...added.map((p) => pieceField(p, -1)));
    const [plainTok, xlnetTok] = [undefined, 'xlnet' as const].map((mode) => SentencePieceTokenizer.fromModelBytes(bytes, { mode }));
    const comma = vocabId(',');
    expect(plainTok.tokenize('2026,')).toEqual(['\u25812026,']);
    expect(xlnetTok.tokenize('2026,')).toEqual(['\u25812026', ',']);
    expect(xlnetTok.encode('2026,', { addSpecialTokens: false })).toEqual([VOCAB.length + 1, comma]);
    // Inside a word the piece has no "▁", and the re-encoding's dummy "▁" is taken off again.
    expect(plainTok.tokenize('春2026,')).toEqual([...plainTok.tokenize('春'), '2026,']);
    expect(xlnetTok.tokenize('春2026,')).toEqual([...plainTok.tokenize('春'), '2026', ',']);
  });
});

describe('SentencePiece protobuf reader', () => {
  it('reads pieces, trainer and normalizer specs, and skips unknown fields of every wire type', () => {
    const bytes = concat(
      pieceField('<unk>', 0, PieceType.UNKNOWN),
      pieceField('a', -1.5),
      concat(tag(99, FIXED64), [1, 2, 3, 4, 5, 6, 7, 8]),
      concat(tag(98, GROUP_START), varintField(1, 5), tag(97, GROUP_START), tag(97, GROUP_END), tag(98, GROUP_END)),
      concat(tag(96, FIXED32), [0, 0, 0, 0]),
      varintField(95, 2 ** 40),
      lenField(94, 'skipped'),
      trainerSpecField(varintField(43, -1), varintField(40, 0), lenField(44, ' ? '), varintField(35, 0), varintField(777, 1), lenField(31, '<br>')),
      lenField(3, concat(lenField(1, 'identity'), varintField(3, 0), floatField(50, 1))),
      pieceField('<br>', 0, PieceType.USER_DEFINED),
    );
    const model = parseModelProto(bytes);
    expect(model.pieces).toEqual([
      { piece: '<unk>', score: 0, type: PieceType.UNKNOWN },
      { piece: 'a', score: -1.5, type: PieceType.NORMAL },
      { piece: '<br>', score: 0, type: PieceType.USER_DEFINED },
    ]);
    expect(model.trainerSpec).toMatchObject({ modelType: 1, padId: -1, unkId: 0, bosId: 1, unkSurface: ' ? ', byteFallback: false, userDefinedSymbols: ['<br>'] });
    expect(model.normalizerSpec).toMatchObject({ name: 'identity', addDummyPrefix: false, removeExtraWhitespaces: true, escapeWhitespaces: true });
    expect(model.normalizerSpec.precompiledCharsmap.length).toBe(0);
    expect(model.denormalizerSpec).toBeUndefined();
  });

  it('reads the reference model\'s trainer and normalizer specs', () => {
    const { trainerSpec, normalizerSpec } = parseModelProto(MODEL_BYTES);
    expect(trainerSpec.modelType).toBe(1);
    expect(trainerSpec.vocabSize).toBe(VOCAB.length);
    expect(trainerSpec.controlSymbols).toEqual(VOCAB.slice(3, 8).map((v) => v.piece));
    expect(trainerSpec.userDefinedSymbols[0]).toBe('<eop>');
    expect(normalizerSpec.name).toBe('nmt_nfkc');
    expect(normalizerSpec.precompiledCharsmap.length).toBeGreaterThan(4);
  });

  it('segments a hand-built model by best total score; equal scores go to the longer first piece', () => {
    const bytes = concat(
      pieceField('<unk>', 0, PieceType.UNKNOWN),
      pieceField('<sep>', 0, PieceType.CONTROL),
      ...([['\u2581', -1], ['a', -1], ['b', -1], ['ab', -2], ['c', -3], ['abc', -6.5], ['d', -2]] as const).map(([p, s]) => pieceField(p, s)),
      pieceField('cd', -1.5, PieceType.UNUSED),
      pieceField('<br>', 0, PieceType.USER_DEFINED),
      lenField(3, lenField(1, 'identity')),
    );
    const tok = SentencePieceTokenizer.fromModelBytes(bytes);
    expect(tok.tokenize('ab')).toEqual(['\u2581', 'ab']); // ab (-2) ties a + b (-2): the earlier start wins
    expect(tok.tokenize('abc')).toEqual(['\u2581', 'ab', 'c']); // -5 beats abc + nothing (-6.5)
    expect(tok.tokenize('cd')).toEqual(['\u2581', 'c', 'd']); // unused pieces are never chosen
    expect(tok.tokenize('a<br>b')).toEqual(['\u2581', 'a', '<br>', 'b']);
    expect(tok.encode('axyb')).toEqual([2, 3, 0, 4]); // one <unk> for the run "xy"
    expect(tok.tokenize('axyb')).toEqual(['\u2581', 'a', 'xy', 'b']);
    expect(tok.tokenize('<sep>')).toEqual(['\u2581', '<sep>']);
    expect(tok.encode('<sep>')).toEqual([2, 0]); // control pieces are not matched in text
  });

  it('rejects what is not a SentencePiece model, clearly', () => {
    const json = new TextEncoder().encode(JSON.stringify({ model: { type: 'Unigram', vocab: [['<unk>', 0]] } }));
    expect(() => SentencePieceTokenizer.fromModelBytes(json)).toThrow(/not a SentencePiece model/);
    expect(() => SentencePieceTokenizer.fromModelBytes(new Uint8Array(0))).toThrow(/not a SentencePiece model.*no pieces/);
    expect(() => parseModelProto(Uint8Array.of(0x0f))).toThrow(/wire type 7/);
    expect(() => parseModelProto(Uint8Array.of(0x00))).toThrow(/field number 0/);
    expect(() => parseModelProto(Uint8Array.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))).toThrow(/longer than 10 bytes/);
    expect(() => parseModelProto(concat(tag(5, GROUP_START), varintField(1, 1)))).toThrow(/group 5 is not closed/);
    expect(() => parseModelProto(concat(tag(5, GROUP_END)))).toThrow(/without its start/);
    expect(() => parseModelProto(pieceField('\u00ff', 0).map((b) => (b === 0xc3 ? 0xff : b)))).toThrow(/not a SentencePiece model.*not valid UTF-8/);
  });

  it('rejects truncated copies of the model', () => {
    for (const cut of [1, 2, 10, 1000, MODEL_BYTES.length >> 1, MODEL_BYTES.length - 1]) {
      expect(() => SentencePieceTokenizer.fromModelBytes(MODEL_BYTES.subarray(0, cut)), `cut at ${cut}`).toThrow(/not a SentencePiece model.*truncated/);
    }
  });

  it('rejects random bytes with an error, never a hang', () => {
    const next = mulberry32(7);
    for (let trial = 0; trial < 300; trial++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(next() * 2000) }, () => Math.floor(next() * 256));
      expect(() => SentencePieceTokenizer.fromModelBytes(bytes)).toThrow(/SentencePiece model/);
    }
  });

  it('rejects BPE models and models without an unknown piece', () => {
    const bpe = concat(MODEL_BYTES, trainerSpecField(varintField(3, 2))); // trainer_spec.model_type = BPE
    expect(parseModelProto(bpe).trainerSpec.modelType).toBe(2);
    expect(() => SentencePieceTokenizer.fromModelBytes(bpe)).toThrow(/model is BPE; only unigram models/);
    const model = parseModelProto(MODEL_BYTES);
    expect(() => new SentencePieceTokenizer({ ...model, pieces: model.pieces.filter((p) => p.type !== PieceType.UNKNOWN) })).toThrow(/no unknown piece/);
    expect(() => SentencePieceTokenizer.fromModelBytes(concat(MODEL_BYTES, pieceField('<unk>', 0)))).toThrow(/"<unk>" appears twice/);
  });
});

describe('SentencePiece charsmap normaliser', () => {
  const { normalizerSpec } = parseModelProto(MODEL_BYTES);
  const normalizer = (changes: Partial<NormalizerSpec>, userDefinedSymbols: string[] = [], treatWhitespaceAsSuffix = false): SentencePieceNormalizer =>
    new SentencePieceNormalizer({ ...normalizerSpec, ...changes }, { userDefinedSymbols, treatWhitespaceAsSuffix });

  it('maps full-width characters to ASCII (nmt_nfkc) by the longest rule', () => {
    expect('ＡＢＣ１２３'.normalize('NFKC')).toBe('ABC123');
    expect(plain.normalize('ＡＢＣ１２３')).toBe('\u2581ABC123');
    expect(plain.normalize('㍻…')).toBe(`\u2581${'㍻…'.normalize('NFKC')}`);
  });

  it('agrees with NFKC on text of many scripts', () => {
    const next = mulberry32(11);
    // Full-width forms stop before U+FF5E: nmt_nfkc keeps the full-width tilde where NFKC makes it "~".
    const pools = [[0x21, 0x7e], [0xc0, 0x24f], [0x391, 0x3c9], [0x3041, 0x30ff], [0x4e00, 0x9fff], [0xff01, 0xff5d], [0xac00, 0xd7a3]] as const;
    for (let trial = 0; trial < 200; trial++) {
      let text = '';
      for (let i = 0; i < 20; i++) {
        const [lo, hi] = pools[Math.floor(next() * pools.length)];
        text += next() < 0.15 ? ' ' : String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
      }
      const expected = nfkcText(text);
      expect(plain.normalize(text), JSON.stringify(text)).toBe(expected === '' ? '' : `\u2581${expected.replaceAll(' ', '\u2581')}`);
    }
  });

  it('collapses and strips whitespace, adds the dummy prefix, escapes spaces, each as configured', () => {
    const text = '  a \t\n b\u3000 ';
    expect(normalizer({}).normalize(text)).toBe('\u2581a\u2581b');
    expect(normalizer({ addDummyPrefix: false }).normalize(text)).toBe('a\u2581b');
    expect(normalizer({ escapeWhitespaces: false }).normalize(text)).toBe(' a b');
    expect(normalizer({ removeExtraWhitespaces: false }).normalize(text)).toBe('\u2581\u2581\u2581a\u2581\u2581\u2581\u2581b\u2581\u2581');
    expect(normalizer({}, [], true).normalize(text)).toBe('a\u2581b\u2581');
    expect(normalizer({}).normalize(' \u3000\t')).toBe('');
    expect(normalizer({}).normalize('')).toBe('');
  });

  it('passes user-defined symbols through unnormalised, and copies everything without a charsmap', () => {
    expect(normalizer({}, ['Ａ１']).normalize('Ａ１Ａ１')).toBe('\u2581Ａ１Ａ１');
    expect(normalizer({}, ['Ａ１']).normalize('ＡＡ１')).toBe('\u2581AＡ１');
    expect(normalizer({ precompiledCharsmap: new Uint8Array(0) }).normalize(' ＡＢＣ  x')).toBe('\u2581ＡＢＣ\u2581x');
  });

  it('rejects a broken charsmap', () => {
    expect(() => normalizer({ precompiledCharsmap: Uint8Array.of(1, 0, 0) })).toThrow(/charsmap is broken/);
    expect(() => normalizer({ precompiledCharsmap: Uint8Array.of(8, 0, 0, 0, 1, 2, 3, 4) })).toThrow(/charsmap is broken/);
    // A trie whose root points outside it: the first lookup says so.
    const corrupt = normalizer({ precompiledCharsmap: Uint8Array.of(4, 0, 0, 0, 0, 0xfc, 0xff, 0xff, 0) });
    expect(() => corrupt.normalize('a')).toThrow(/charsmap trie is corrupt/);
  });
});

describe('SentencePiece loading', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('bundles a byte-identical copy of the songci model, loadable by name, file and folder', () => {
    expect(readFileSync(join(bundledDataDir(), 'songci_unigram_8k.model')).equals(Buffer.from(MODEL_BYTES))).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'spiece-'));
    dirs.push(dir);
    copyFileSync(bundledVocabPath('songci-unigram'), join(dir, 'spiece.model'));
    const [text, expected] = Object.entries(REFERENCE)[1];
    for (const path of [bundledVocabPath('songci-unigram'), dir, join(dir, 'spiece.model')]) {
      const tok = loadTokenizer(path);
      expect(tok).toBeInstanceOf(SentencePieceTokenizer);
      expect(tok.encode(text)).toEqual(expected.ids);
    }
    expect((loadTokenizer(dir, { mode: 'xlnet' }) as SentencePieceTokenizer).mode).toBe('xlnet');
  });

  it('names the file that is not a model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'spiece-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'spiece.model'), '{"not": "a model"}');
    expect(() => loadTokenizer(dir)).toThrow(/spiece\.model: not a SentencePiece model/);
  });
});
