// Completeness by types: an op without a backward rule, or one that forgets an input's gradient, does not compile.
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** Type-checks `source` as if it were a file in src/ops/, against the real sources; returns the error messages. */
function typeErrors(source: string): string[] {
  const file = path.join(root, 'src/ops/__typecheck__.ts');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['@webgpu/types', 'node'],
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, source, lang) : read(name, lang, ...rest);
  const base = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || base(name);
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(file))
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

const header = `
import { defineOp } from '../autograd.js';
import type { Tensor } from '../tensor.js';
`;

describe('defineOp', () => {
  it('accepts an op with a backward rule for every input (control)', () => {
    expect(typeErrors(`${header}
export const twice = defineOp<[Tensor, Tensor], undefined>({
  name: 'twice',
  forward: ([a]) => a,
  backward: (g) => [g, null],
});`)).toEqual([]);
  }, 60_000);

  it('rejects an op with no backward', () => {
    const errors = typeErrors(`${header}
export const noBackward = defineOp<[Tensor], undefined>({
  name: 'no_backward',
  forward: ([a]) => a,
});`);
    expect(errors.join('\n')).toMatch(/Property 'backward' is missing/);
  }, 60_000);

  it('rejects a backward that returns fewer gradients than inputs', () => {
    const errors = typeErrors(`${header}
export const forgets = defineOp<[Tensor, Tensor], undefined>({
  name: 'forgets_b',
  forward: ([a]) => a,
  backward: (g) => [g],
});`);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(/\[Tensor \| null, Tensor \| null\]|source has 1 element|Source has 1 element/);
  }, 60_000);
});
