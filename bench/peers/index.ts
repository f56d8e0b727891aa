// The WebGPU peers the bench races against (bench/peers/*.ts), behind one interface (types.ts).

import { jaxjsPeer } from './jaxjs.js';
import { tfjsPeer } from './tfjs.js';
import type { Peer } from './types.js';

export type { Contender, Gpt2StepSpec, Peer, PeerLoad, TrainStepContender } from './types.js';

export const PEERS: Peer[] = [tfjsPeer, jaxjsPeer];
