// One entry point for weight files: sniffs safetensors / torch.save zip / legacy torch.save pickle from the bytes.

import { parsePytorch } from './pytorch.js';
import { parseSafetensors, type HostTensor } from './safetensors.js';

const ascii = (bytes: Uint8Array, n: number): string => String.fromCharCode(...bytes.subarray(0, n));

/** Why a file is none of the three formats, with a hint for the usual culprits. */
function unknownFormat(bytes: Uint8Array): string {
  const head = ascii(bytes, 64);
  if (head.startsWith('version https://git-lfs')) return 'it is a Git LFS pointer, not the weights: fetch the real file (git lfs pull)';
  if (/^\s*</.test(head)) return 'it looks like HTML or XML (an error page saved instead of the download?)';
  if (bytes.byteLength >= 262 && ascii(bytes.subarray(257), 5) === 'ustar') return 'it is a tar archive, the torch.save format of PyTorch < 0.4; re-save it with a newer PyTorch';
  const hex = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `its first bytes are ${hex || '(empty file)'}; expected safetensors, a torch.save zip archive or a legacy torch.save pickle`;
}

/**
 * Parses a weight file in any supported format into name → tensor. The format comes from the bytes alone:
 *   'PK\x03\x04'                         a zip archive: torch.save since PyTorch 1.6
 *   0x80 (pickle PROTO)                  the legacy torch.save stream
 *   u64 header length, then '{'          safetensors
 * `fileName` only labels error messages.
 */
export function parseWeights(bytes: Uint8Array, fileName = 'weights'): Map<string, HostTensor> {
  const isZip = bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  // Safetensors first: its u64 header length can start with the byte 0x80 (a length of 128 + 256k), which
  // alone would look like pickle's PROTO. '{' at byte 8 with a length that fits the file is unambiguous.
  const headerLength = bytes.byteLength >= 9 ? new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) : 0n;
  const isSafetensors = bytes.byteLength >= 9 && bytes[8] === 0x7b && (bytes[0] !== 0x80 || headerLength <= BigInt(bytes.byteLength - 8));
  const isPickle = !isSafetensors && bytes[0] === 0x80;
  if (!isZip && !isPickle && !isSafetensors) throw new Error(`${fileName}: not a weight file webgpu-lm reads: ${unknownFormat(bytes)}`);
  try {
    return isZip || isPickle ? parsePytorch(bytes) : parseSafetensors(bytes).tensors;
  } catch (e) {
    throw new Error(`${fileName}: ${(e as Error).message}`, { cause: e });
  }
}
