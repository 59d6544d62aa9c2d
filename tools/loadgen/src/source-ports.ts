// Source ports a load process picks itself on its own loopback address. Left to the kernel,
// bind(address, 0) searches the ephemeral range and checks each candidate against every socket
// bound to that port on any address: with tens of thousands of connections spread over several
// addresses that search grew to milliseconds, and connects fell from ~1,000/s to ~150/s per process
// (measured: 16,000 connections from one address took 66 s). An explicit port costs one check.

/** Below Linux's ephemeral range (32768-60999), so no port the kernel hands out elsewhere collides. */
export const FIRST_SOURCE_PORT = 10_000;
export const LAST_SOURCE_PORT = 32_767;

/** A connect may find its port still held (TIME_WAIT of an earlier run): it tries this many in turn. */
export const PORT_ATTEMPTS = 64;

/** Hands out the ports of one source address in turn, wrapping around. */
export class SourcePorts {
  private port: number;

  constructor(
    readonly address: string,
    private readonly first = FIRST_SOURCE_PORT,
    private readonly last = LAST_SOURCE_PORT,
  ) {
    if (!(first > 0 && first <= last && last < 65_536)) throw new RangeError(`bad source port range ${first}-${last}`);
    this.port = first;
  }

  /** Ports in the range: at most this many connections of one process at a time. */
  get size(): number {
    return this.last - this.first + 1;
  }

  next(): number {
    const port = this.port;
    this.port = port === this.last ? this.first : port + 1;
    return port;
  }
}

/**
 * The source address of load process `process` in block `block` (1-254): 127.0.<block>.<2+process>.
 * A bench run's connections close into TIME_WAIT for a minute, holding their ports: each set of
 * load processes takes a fresh block, so the next scenario or target never meets them.
 */
export function sourceAddress(block: number, process: number): string {
  if (!(Number.isInteger(block) && block >= 1 && block <= 254)) throw new RangeError(`bad address block ${block}`);
  if (!(Number.isInteger(process) && process >= 0 && process <= 252)) throw new RangeError(`bad load process index ${process}`);
  return `127.0.${block}.${2 + process}`;
}

/** Blocks in turn, from a start that differs between bench invocations (a run may follow another within the minute). */
export class AddressBlocks {
  private block: number;

  constructor(start: number) {
    this.block = 1 + (Math.abs(Math.trunc(start)) % 254);
  }

  next(): number {
    const block = this.block;
    this.block = block === 254 ? 1 : block + 1;
    return block;
  }
}
