// Corpus text to articles (browser-clean): train.json (GPT2-Chinese), JSON lines, plain text, gzip; errors give line and column.

import { gunzipSync } from 'fflate';

/** "line 3, column 17" for a character offset into text. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

/**
 * Where JSON text stops being valid: the offset of the first character a JSON parser rejects (text.length
 * if it ends too early). V8's own message gives no position for many errors, so we find it ourselves with
 * a small recursive-descent scan of the grammar (values, objects, arrays, strings, numbers, literals).
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const expect = (c: string): void => void (text[i] === c ? i++ : fail());
  const string = (): void => {
    expect('"');
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) ((i += k), fail());
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    expect('"');
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '"') string();
    else if (c === '[' || c === '{') {
      const close = c === '[' ? ']' : '}';
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (;;) {
        if (close === '}') {
          ws();
          string();
          ws();
          expect(':');
        }
        value();
        ws();
        if (text[i] === ',') i++;
        else return expect(close);
      }
    } else if (c !== undefined && /[-0-9]/.test(c)) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) fail();
      i += m![0].length;
    } else {
      const lit = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
      if (!lit) fail();
      i += lit!.length;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return -1;
  } catch (at) {
    if (typeof at !== 'number') throw at;
    return at;
  }
}

/** Parses JSON; on an error, says the line and column where the text stops being valid. */
function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const at = jsonErrorOffset(text);
    const where = at >= 0 ? ` at ${lineColumn(text, at)}` : '';
    throw new Error(`${file}: malformed JSON${where}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * The articles of a corpus file's bytes, by its name:
 *   .json   a JSON array of strings, one per article (GPT2-Chinese's train.json);
 *   .jsonl  one JSON string per line (GPT2-Chinese master's format);
 *   .txt    plain text; articles are separated by blank lines;
 *   any of these gzip-compressed with a further .gz.
 * Errors name `name` and, for malformed JSON, the line and column.
 */
export function parseCorpus(data: Uint8Array, name: string): string[] {
  let bytes = data;
  let kind = name;
  if (kind.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new Error(`${name}: not a valid gzip file (${(e as Error).message})`);
    }
    kind = kind.slice(0, -3);
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  let articles: unknown[];
  if (kind.endsWith('.jsonl')) {
    articles = text.split('\n').flatMap((line, i) => (line.trim() === '' ? [] : [parseJson(line, `${name} line ${i + 1}`)]));
  } else if (kind.endsWith('.txt')) {
    articles = text.split(/\r?\n[ \t]*\r?\n/).map((a) => a.trim()).filter((a) => a.length > 0);
  } else {
    const parsed = parseJson(text, name);
    if (!Array.isArray(parsed)) throw new Error(`${name}: expected a JSON array of article strings, found ${parsed === null ? 'null' : typeof parsed}`);
    articles = parsed;
  }
  const bad = articles.findIndex((a) => typeof a !== 'string');
  if (bad >= 0) throw new Error(`${name}: article ${bad} is a ${typeof articles[bad]}, not a string`);
  if (articles.length === 0) throw new Error(`${name}: the corpus is empty`);
  return articles as string[];
}
