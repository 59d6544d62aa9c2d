// A real Redis for integration tests (REDIS_URL, else redis-server, else a container): the kit's,
// under the names tests import.
export { NO_REDIS, type RedisHandle, startRedis, uniquePrefix } from '../../tools/kit/src/redis.js';
