// A local Redis Cluster for tests and tools: six redis-server processes on loopback (three
// masters, three replicas), joined by `redis-cli --cluster create --cluster-replicas 1`. Each node
// keeps its files (nodes.conf, the AOF when asked) in a temp dir of its own, so a killed node
// restarts as the same cluster member. Processes, ports and waits are the kit's.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { type Proc, startProc } from './process.js';
import { waitUntil } from './wait.js';

/** Hash slots in every Redis Cluster. */
export const CLUSTER_SLOTS = 16_384;

export interface RedisClusterOptions {
  /** Masters (default 3); each gets replicasPerMaster replicas. */
  readonly masters?: number;
  readonly replicasPerMaster?: number;
  /**
   * cluster-node-timeout: how long a silent master has before its replica takes over. Redis's
   * default is 15 s; tests want a failover within seconds.
   */
  readonly nodeTimeoutMs?: number;
  /** appendonly yes (appendfsync everysec) on every node; default off, like the single-Redis kit. */
  readonly appendonly?: boolean;
  /** How long start-up (spawn, create, cluster_state:ok everywhere) may take. */
  readonly timeoutMs?: number;
}

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface ClusterNode extends Address {
  /** The cluster bus port (cluster-port), chosen free rather than port + 10000. */
  readonly busPort: number;
  /** This node's dir: nodes.conf, the AOF. */
  readonly dir: string;
  /** The running process's id, or undefined while killed. */
  readonly pid: number | undefined;
  readonly running: boolean;
}

export interface NodeRole {
  readonly port: number;
  readonly id: string;
  readonly role: 'master' | 'replica';
  /** A replica's master id; null for a master. */
  readonly masterId: string | null;
  /** A master's slot ranges, [first, last] inclusive. */
  readonly slots: readonly (readonly [number, number])[];
  /** Flagged fail/pfail, or not connected, by the node asked. */
  readonly failed: boolean;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** Every node's address: ioredis `new Cluster(seeds)` or REDIS_CLUSTER_NODES. */
  readonly seeds: readonly Address[];
  /** seeds as "host:port,host:port,…" (REDIS_CLUSTER_NODES). */
  readonly seedList: string;
  /** One command on one node through redis-cli (for CLUSTER … and INFO in tests and tools). */
  command(port: number, ...args: string[]): Promise<string>;
  /** The cluster as a live node sees it (CLUSTER NODES). */
  roles(): Promise<NodeRole[]>;
  /** The master serving a slot now. */
  masterOf(slot: number): Promise<NodeRole>;
  /** Resolves when every running node says cluster_state:ok with all slots ok and every running replica is in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** SIGKILL: an abrupt crash. Its files stay, so restart() brings the same member back. */
  kill(port: number): Promise<void>;
  /** SIGSTOP: sockets stay open, nothing is answered. */
  pause(port: number): void;
  /** SIGCONT after pause(). */
  resume(port: number): void;
  /** Starts a killed node again on its ports with its files (it rejoins, typically as a replica). */
  restart(port: number): Promise<void>;
  /** Kills every node (by PID) and removes their dirs. Safe to call twice and after a failed start. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const NODE_READY_MS = 10_000;

/** Runs redis-cli; resolves its stdout, rejects with its stderr/stdout when it fails. */
function cli(args: readonly string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

/** Polls check until it holds; a check that throws (a node not answering yet) counts as not yet. */
function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  return waitUntil(() => check().catch(() => false), { timeoutMs, intervalMs: 100, what });
}

/** CLUSTER INFO / INFO text as fields. */
export function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** CLUSTER NODES text as roles, keyed by port. */
export function parseClusterNodes(text: string): NodeRole[] {
  const roles: NodeRole[] = [];
  for (const line of text.split(/\r?\n/)) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, address, flags, master, , , , linkState, ...slotParts] = parts as [string, string, string, string, string, string, string, string, ...string[]];
    // address is host:port@busport[,hostname]
    const port = Number(address.split('@')[0]!.split(':').pop());
    const flagSet = new Set(flags.split(','));
    const slots: [number, number][] = [];
    for (const s of slotParts) {
      if (s.startsWith('[')) continue; // a slot being migrated/imported
      const [first, last] = s.split('-');
      slots.push([Number(first), Number(last ?? first)]);
    }
    roles.push({
      port,
      id,
      role: flagSet.has('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master,
      slots,
      failed: flagSet.has('fail') || flagSet.has('fail?') || linkState !== 'connected',
    });
  }
  return roles;
}

interface Member {
  readonly port: number;
  readonly busPort: number;
  readonly dir: string;
  proc: Proc | null;
}

/** Starts a six-node cluster (by default) and resolves once it is healthy; kills what it started on failure. */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const total = masters * (1 + replicas);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const members: Member[] = [];
  const taken = new Set<number>();
  const pick = async (): Promise<number> => {
    for (;;) {
      const port = await freePort(HOST);
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  for (let i = 0; i < total; i++) {
    const port = await pick();
    members.push({ port, busPort: await pick(), dir: mkdtempSync(join(tmpdir(), `hubcast-rc-${port}-`)), proc: null });
  }
  const byPort = (port: number): Member => {
    const m = members.find((x) => x.port === port);
    if (m === undefined) throw new Error(`no cluster node on port ${port}`);
    return m;
  };

  const spawnNode = async (m: Member): Promise<void> => {
    const args = [
      '--port', String(m.port),
      '--bind', HOST,
      '--protected-mode', 'no',
      '--dir', m.dir,
      '--cluster-enabled', 'yes',
      '--cluster-port', String(m.busPort),
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 2000),
      // Any replica may take over however long it was cut off: on loopback none lags for real.
      '--cluster-replica-validity-factor', '0',
      '--save', '',
      '--appendonly', options.appendonly === true ? 'yes' : 'no',
    ];
    m.proc = startProc(`redis-cluster:${m.port}`, 'redis-server', args);
    await m.proc.waitForLine(/Ready to accept connections/, NODE_READY_MS);
  };

  const killNode = async (m: Member): Promise<void> => {
    const proc = m.proc;
    m.proc = null;
    if (proc === null) return;
    proc.child.kill('SIGCONT'); // a paused node must still die
    await proc.stop('SIGKILL');
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(members.map(killNode));
    for (const m of members) rmSync(m.dir, { recursive: true, force: true });
  };

  const command = (port: number, ...args: string[]): Promise<string> => cli(['-h', HOST, '-p', String(port), ...args]);
  const running = (): Member[] => members.filter((m) => m.proc !== null && m.proc.child.exitCode === null);

  const roles = async (): Promise<NodeRole[]> => {
    let lastErr: unknown = new Error('no node is running');
    for (const m of running()) {
      try {
        return parseClusterNodes(await command(m.port, 'CLUSTER', 'NODES'));
      } catch (err) {
        lastErr = err; // paused or just killed: ask the next one
      }
    }
    throw lastErr;
  };

  const healthy = async (): Promise<boolean> => {
    for (const m of running()) {
      const info = infoFields(await command(m.port, 'CLUSTER', 'INFO'));
      if (info.get('cluster_state') !== 'ok') return false;
      if (info.get('cluster_slots_ok') !== String(CLUSTER_SLOTS)) return false;
      const repl = infoFields(await command(m.port, 'INFO', 'replication'));
      if (repl.get('role') === 'slave' && repl.get('master_link_status') !== 'up') return false;
    }
    // Every node agrees on the masters: one per slot range, none flagged failed.
    const view = await roles();
    const covered = view.filter((r) => r.role === 'master' && !r.failed).reduce((n, r) => n + r.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
    return covered === CLUSTER_SLOTS;
  };

  const waitHealthy = (ms = timeoutMs): Promise<void> => until('a healthy Redis Cluster (cluster_state:ok, every slot served, replicas in sync)', ms, healthy);

  try {
    await Promise.all(members.map(spawnNode));
    await cli(
      ['--cluster', 'create', ...members.map((m) => `${HOST}:${m.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      timeoutMs,
    );
    await waitHealthy();
  } catch (err) {
    await stop();
    throw err;
  }

  const nodes: ClusterNode[] = members.map((m) => ({
    host: HOST,
    port: m.port,
    busPort: m.busPort,
    dir: m.dir,
    get pid() {
      return m.proc?.pid;
    },
    get running() {
      return m.proc !== null && m.proc.child.exitCode === null;
    },
  }));
  const seeds = members.map((m) => ({ host: HOST, port: m.port }));
  return {
    nodes,
    seeds,
    seedList: seeds.map((s) => `${s.host}:${s.port}`).join(','),
    command,
    roles,
    async masterOf(slot) {
      const master = (await roles()).find((r) => r.role === 'master' && !r.failed && r.slots.some(([a, b]) => slot >= a && slot <= b));
      if (master === undefined) throw new Error(`no live master serves slot ${slot}`);
      return master;
    },
    waitHealthy,
    kill: (port) => killNode(byPort(port)),
    pause: (port) => void byPort(port).proc?.child.kill('SIGSTOP'),
    resume: (port) => void byPort(port).proc?.child.kill('SIGCONT'),
    async restart(port) {
      const m = byPort(port);
      if (m.proc !== null) throw new Error(`cluster node ${port} is running`);
      await spawnNode(m);
    },
    stop,
  };
}
