// Tokenizers (browser-safe core): the common Tokenizer interface, BERT WordPiece, GPT-2 byte-level BPE, SentencePiece unigram, vocab building.

export interface EncodeOptions {
  /**
   * Wrap the ids in the model's special tokens. Defaults to what the original library does:
   * `[CLS] … [SEP]` for a standard BERT tokenizer (HF `encode`), nothing for the GPT2-Chinese
   * variant (its pipeline calls `convert_tokens_to_ids(tokenize(text))`) and nothing for GPT-2.
   */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop pad/unk/cls/sep/mask/eos ids before turning ids back into text. Default false. */
  skipSpecialTokens?: boolean;
}

/** What every tokenizer here offers; file reading lives in tokenizers/node.ts so this stays browser-clean. */
export interface Tokenizer {
  /** Number of ids (rows of the embedding table this vocabulary needs). */
  readonly vocabSize: number;
  /** Special-token ids; undefined where the vocabulary has no such token (GPT-2 has only eos). */
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  readonly clsTokenId: number | undefined;
  readonly sepTokenId: number | undefined;
  readonly maskTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** Text to token strings, no special tokens added. */
  tokenize(text: string): string[];
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

export {
  BertTokenizer,
  parseVocabText,
  postprocessGpt2Chinese,
  BERT_SPECIAL_TOKENS,
  type BertTokenizerOptions,
  type BertVariant,
  type Gpt2ChinesePostprocessStyle,
} from './wordpiece.js';
export {
  GPT2Tokenizer,
  bytesToUnicode,
  gpt2PreTokenize,
  parseMerges,
  type GPT2TokenizerOptions,
  type GPT2EncodeOptions,
} from './bpe.js';
export {
  SentencePieceTokenizer,
  SentencePieceNormalizer,
  PieceType,
  parseModelProto,
  type ModelProto,
  type NormalizerSpec,
  type NormalizerOptions,
  type SentencePieceEntry,
  type SentencePieceMode,
  type SentencePieceTokenizerOptions,
  type TrainerSpec,
  type XLNetInputOptions,
  type XLNetInputs,
} from './sentencepiece.js';
export { makeVocab, formatVocabFile, type MakeVocabOptions } from './vocab.js';
