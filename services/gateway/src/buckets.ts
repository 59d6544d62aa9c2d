// A histogram cheap enough to observe on every bus message (the fan-out time): a count per
// bucket and a sum, turned into Prometheus series only when /metrics is scraped. prom-client's
// Histogram.observe builds a label object and a closure and hashes the labels on every call,
// which the receive path's profile showed as its largest self-time entry. Pure.

/** One series of the exposition: a bucket (`le`), the sum or the count. */
export interface BucketSeries {
  readonly metricName: string;
  readonly labels: { readonly le?: number | '+Inf' };
  readonly value: number;
}

export class Buckets {
  /** Observations per bucket, not cumulative; the last one is past every bound (+Inf). */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  /** bounds: the buckets' upper bounds, ascending. */
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts the value in the first bucket whose bound it does not exceed (bounds are inclusive, as Prometheus's `le`). */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** The Prometheus series of `name`: cumulative `_bucket` per bound and +Inf, then `_sum` and `_count`. */
  series(name: string): BucketSeries[] {
    const out: BucketSeries[] = [];
    let below = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      below += this.counts[i]!;
      out.push({ metricName: `${name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf' }, value: below });
    }
    out.push({ metricName: `${name}_sum`, labels: {}, value: this.sum }, { metricName: `${name}_count`, labels: {}, value: this.count });
    return out;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
