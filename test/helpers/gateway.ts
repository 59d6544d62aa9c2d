// Gateways as real processes on ephemeral ports: the kit's, under the names tests import.
export { type GatewayProcess, MAIN, startGateway } from '../../tools/kit/src/gateway.js';
export { parseMetrics } from '../../tools/kit/src/metrics.js';
