// @hubcast/client: the public surface.
export { HubcastClient } from './client.js';
export type { ClientEvents, DisconnectedEvent, HubcastClientOptions, StateEvent } from './client.js';
export { Subscription } from './subscription.js';
export type { MessageContext, SubscribedEvent, SubscriptionEvents, SubscriptionState } from './subscription.js';
export { ClientErrorCode, HubcastError } from './errors.js';
export type { State } from './machine.js';
export type { Position } from './position.js';
export type { SocketLike, WebSocketConstructor } from './protocol.js';
export type { Random } from './backoff.js';
