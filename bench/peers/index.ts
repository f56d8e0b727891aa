// The WebGPU peers the bench races against (bench/peers/*.ts), behind one interface (types.ts).

import { create, globals } from 'webgpu';
import { dawnFlags } from '../../src/gpu/device.js';
import { jaxjsPeer } from './jaxjs.js';
import { tfjsPeer } from './tfjs.js';
import type { Peer } from './types.js';

export type { Contender, Gpt2StepSpec, Peer, PeerLoad, TrainStepContender } from './types.js';

export const PEERS: Peer[] = [tfjsPeer, jaxjsPeer];

/**
 * Makes Dawn's classes globals and navigator.gpu one Dawn instance (with our flags, gpu/device.ts), as in a browser.
 * Call it before init() and before any peer loads: our init() and every peer then take their devices from the same
 * instance and adapter, and the instance stays referenced for the life of the process (were it garbage-collected
 * while a device lives, Dawn would abort).
 */
export function shareDawnWithPeers(): void {
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: create(dawnFlags()) }, configurable: true, writable: true });
}
