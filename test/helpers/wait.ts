// Waiting with a deadline: the kit's, under the names tests import.
export { type WaitOptions, waitUntil, within } from '../../tools/kit/src/wait.js';
export { freePort } from '../../tools/kit/src/ports.js';
