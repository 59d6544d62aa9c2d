// A tiny authoritative DNS server for loopback clusters: it answers A queries for a few names,
// the way Docker's embedded DNS answers a compose service name with every replica's address.
// HAProxy's `resolvers` section points at it, so deploy/haproxy/haproxy.cfg runs unchanged.
import { type RemoteInfo, type Socket, createSocket } from 'node:dgram';
import { once } from 'node:events';
import { isIPv4 } from 'node:net';

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;
const TTL_SECONDS = 1;

export interface DnsServer {
  /** host:port to put in a resolver's nameserver line. */
  readonly address: string;
  /** Replaces the A records of a name (an empty list answers NODATA). */
  set(name: string, addresses: readonly string[]): void;
  close(): Promise<void>;
}

interface Question {
  readonly name: string;
  readonly type: number;
  readonly cls: number;
  /** Offset just past the question, where answers start. */
  readonly end: number;
}

function readQuestion(msg: Buffer): Question | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    if (at >= msg.length) return null;
    const len = msg[at]!;
    at += 1;
    if (len === 0) break;
    if (len > 63 || at + len > msg.length) return null; // no compression in a question
    labels.push(msg.toString('latin1', at, at + len));
    at += len;
  }
  if (at + 4 > msg.length) return null;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(at), cls: msg.readUInt16BE(at + 2), end: at + 4 };
}

function reply(query: Buffer, question: Question | null, rcode: number, addresses: readonly string[]): Buffer {
  const qlen = question ? question.end - 12 : 0;
  const out = Buffer.alloc(12 + qlen + addresses.length * 16);
  out.writeUInt16BE(query.length >= 2 ? query.readUInt16BE(0) : 0, 0);
  const rd = query.length >= 3 ? query[2]! & 0x01 : 0;
  out[2] = 0x84 | rd; // QR=1, AA=1
  out[3] = rcode;
  out.writeUInt16BE(question ? 1 : 0, 4);
  out.writeUInt16BE(addresses.length, 6);
  if (question) query.copy(out, 12, 12, question.end);
  let at = 12 + qlen;
  for (const address of addresses) {
    out.writeUInt16BE(0xc00c, at); // name: pointer to the question
    out.writeUInt16BE(TYPE_A, at + 2);
    out.writeUInt16BE(CLASS_IN, at + 4);
    out.writeUInt32BE(TTL_SECONDS, at + 6);
    out.writeUInt16BE(4, at + 10);
    const octets = address.split('.');
    for (let i = 0; i < 4; i++) out[at + 12 + i] = Number(octets[i]);
    at += 16;
  }
  return out;
}

export async function startDnsServer(host: string, records: Record<string, readonly string[]>): Promise<DnsServer> {
  const table = new Map<string, readonly string[]>();
  const set = (name: string, addresses: readonly string[]): void => {
    for (const a of addresses) if (!isIPv4(a)) throw new Error(`dns: not an IPv4 address: ${a}`);
    table.set(name.toLowerCase(), [...addresses]);
  };
  for (const [name, addresses] of Object.entries(records)) set(name, addresses);

  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const question = readQuestion(msg);
    let answer: Buffer;
    if (!question) answer = reply(msg, null, RCODE_FORMERR, []);
    else {
      const known = table.get(question.name);
      if (!known) answer = reply(msg, question, RCODE_NXDOMAIN, []);
      else answer = reply(msg, question, 0, question.type === TYPE_A && question.cls === CLASS_IN ? known : []);
    }
    socket.send(answer, from.port, from.address);
  });
  socket.bind(0, host);
  await once(socket, 'listening');
  return {
    address: `${host}:${socket.address().port}`,
    set,
    close: async () => {
      socket.close();
      await once(socket, 'close');
    },
  };
}
