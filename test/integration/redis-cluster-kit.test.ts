// The local Redis Cluster kit: six nodes, three masters with one replica each, every slot served;
// a killed master's replica takes over and the killed node rejoins; stop() leaves nothing behind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CLUSTER_SLOTS, type RedisCluster, infoFields, startRedisCluster } from '../../tools/kit/src/redis-cluster.js';

describe('Redis Cluster kit', { timeout: 120_000 }, () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(() => cluster?.stop());

  test('six loopback nodes: three masters covering every slot, each with one replica in sync', async () => {
    assert.equal(cluster.nodes.length, 6);
    assert.equal(new Set(cluster.nodes.flatMap((n) => [n.port, n.busPort])).size, 12, 'client and bus ports all distinct');
    assert.equal(cluster.seedList, cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(','));
    for (const node of cluster.nodes) {
      assert.equal(node.host, '127.0.0.1');
      assert.ok(existsSync(`${node.dir}/nodes.conf`), 'nodes.conf in the node dir');
      const info = infoFields(await cluster.command(node.port, 'CLUSTER', 'INFO'));
      assert.equal(info.get('cluster_state'), 'ok');
      assert.equal(info.get('cluster_slots_assigned'), String(CLUSTER_SLOTS));
      assert.equal(info.get('cluster_known_nodes'), '6');
      assert.equal((await cluster.command(node.port, 'CONFIG', 'GET', 'bind')).split('\n')[1], '127.0.0.1');
    }
    const roles = await cluster.roles();
    const masters = roles.filter((r) => r.role === 'master');
    assert.equal(masters.length, 3);
    assert.equal(masters.reduce((n, m) => n + m.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0), CLUSTER_SLOTS);
    for (const m of masters) assert.equal(roles.filter((r) => r.masterId === m.id).length, 1, 'one replica per master');
    const owner = await cluster.masterOf(0);
    assert.ok(owner.slots.some(([a]) => a === 0));
  });

  test('a SIGKILLed master is replaced by its replica; restarted, it rejoins as a replica', async () => {
    const victim = await cluster.masterOf(0);
    const replica = (await cluster.roles()).find((r) => r.masterId === victim.id)!;
    const node = cluster.nodes.find((n) => n.port === victim.port)!;
    const pid = node.pid;
    assert.ok(pid !== undefined);
    await cluster.kill(victim.port);
    assert.equal(node.running, false);
    assert.equal(node.pid, undefined);
    assert.throws(() => process.kill(pid, 0), 'the process is gone');
    await cluster.waitHealthy(30_000);
    assert.equal((await cluster.masterOf(0)).port, replica.port, 'the replica serves the slots now');

    await cluster.restart(victim.port);
    await cluster.waitHealthy(30_000);
    const back = (await cluster.roles()).find((r) => r.port === victim.port)!;
    assert.equal(back.role, 'replica');
    assert.equal(back.masterId, replica.id);
  });

  test('a paused node answers nothing until resumed', async () => {
    const node = cluster.nodes[5]!;
    cluster.pause(node.port);
    await assert.rejects(cluster.command(node.port, 'PING'), /redis-cli/, 'the PING times out');
    cluster.resume(node.port);
    assert.equal((await cluster.command(node.port, 'PING')).trim(), 'PONG');
  });
});

describe('Redis Cluster kit stop', { timeout: 120_000 }, () => {
  test('stop() kills every node by PID and removes its dir, also when called twice', async (t) => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0, appendonly: true });
    t.after(() => cluster.stop()); // stopped even if an assertion below fails
    const pids = cluster.nodes.map((n) => n.pid!);
    const dirs = cluster.nodes.map((n) => n.dir);
    assert.equal(cluster.nodes.length, 3);
    assert.equal(infoFields(await cluster.command(cluster.nodes[0]!.port, 'INFO', 'persistence')).get('aof_enabled'), '1');
    await cluster.stop();
    await cluster.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0));
    for (const dir of dirs) assert.equal(existsSync(dir), false);
  });
});
