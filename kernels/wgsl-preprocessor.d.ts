// Types for wgsl-preprocessor (the package ships no types and no main): a template tag that resolves `#if ${cond}` / `#elif` / `#else` / `#endif`.
declare module 'wgsl-preprocessor/wgsl-preprocessor.js' {
  export function wgsl(strings: TemplateStringsArray, ...values: unknown[]): string;
}
