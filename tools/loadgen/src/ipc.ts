// Messages between the orchestrator and its load processes (child_process IPC).

/** How a subscriber speaks to a target: hubcast and the ws ceiling need nothing beyond the open; Socket.IO needs its handshake and pongs. */
export type Dialect = 'plain' | 'socketio';

export interface ConnectTarget {
  readonly url: string;
  readonly count: number;
}

export type SubscriberRequest =
  | { readonly type: 'connect'; readonly dialect: Dialect; readonly targets: readonly ConnectTarget[]; readonly localAddress: string; readonly concurrency: number }
  /** Opens the targets' connections `batch` at a time, closes each batch once it is open, and keeps none. */
  | { readonly type: 'churn'; readonly dialect: Dialect; readonly targets: readonly ConnectTarget[]; readonly localAddress: string; readonly batch: number }
  | { readonly type: 'run'; readonly run: number }
  | { readonly type: 'report' }
  | { readonly type: 'close' };

export interface SubscriberReport {
  readonly type: 'report';
  /** Messages of the current run received, over all connections. */
  readonly received: number;
  /** Connections that received nothing of the current run. */
  readonly silent: number;
  /** Connections open now. */
  readonly open: number;
  /** Connections that closed although nobody asked. */
  readonly closed: number;
  /** The run's publish-to-receive latency histogram (µs), encoded by hdr-histogram-js. */
  readonly histogram: string;
}

export type SubscriberReply =
  | { readonly type: 'connected'; readonly open: number; readonly failed: number; readonly firstError: string | null }
  | { readonly type: 'churned'; readonly opened: number; readonly failed: number; readonly firstError: string | null }
  | { readonly type: 'ran' }
  | SubscriberReport
  | { readonly type: 'closed' };

/** How the publisher process speaks to a target (both hubcast targets speak hubcast). */
export type PublisherDialect = 'hubcast' | 'socketio' | 'ws';

export type PublisherRequest =
  | { readonly type: 'connect'; readonly dialect: PublisherDialect; readonly urls: readonly string[] }
  /** Publish number s goes to channels[s % channels.length]. */
  | { readonly type: 'publish'; readonly run: number; readonly rate: number; readonly durationMs: number; readonly size: number; readonly channels: readonly string[] }
  | { readonly type: 'close' };

export type PublisherReply =
  | { readonly type: 'connected' }
  | { readonly type: 'published'; readonly sent: number; readonly elapsedMs: number }
  | { readonly type: 'closed' };
