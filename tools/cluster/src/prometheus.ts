// Prometheus on loopback from deploy/prometheus/prometheus.yml itself: only service discovery
// changes (Docker's DNS name "gateway" becomes the loopback addresses); rules stay the same file.
import { parse, stringify } from 'yaml';
import { resolve } from 'node:path';

export interface LoopbackTargets {
  /** host:port of every gateway replica (replaces the job that uses dns_sd_configs). */
  readonly gateways: readonly string[];
  /** host:port for each static job, by job name (haproxy, prometheus). */
  readonly jobs: Readonly<Record<string, string>>;
  /** Directory the source file's relative rule_files are relative to. */
  readonly rulesDir: string;
  /** Shorter scrape and evaluation intervals for tests, e.g. "1s". */
  readonly interval?: string;
}

interface ScrapeConfig {
  job_name: string;
  dns_sd_configs?: unknown;
  static_configs?: { targets: string[] }[];
}

interface PromConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs?: ScrapeConfig[];
}

export function loopbackPrometheusConfig(source: string, targets: LoopbackTargets): string {
  const config = parse(source) as PromConfig;
  config.rule_files = (config.rule_files ?? []).map((file) => resolve(targets.rulesDir, file));
  for (const job of config.scrape_configs ?? []) {
    if (job.dns_sd_configs !== undefined) {
      delete job.dns_sd_configs;
      job.static_configs = [{ targets: [...targets.gateways] }];
      continue;
    }
    const target = targets.jobs[job.job_name];
    if (target === undefined) throw new Error(`prometheus.yml: no loopback target for job ${job.job_name}`);
    job.static_configs = [{ targets: [target] }];
  }
  if (targets.interval !== undefined) {
    config.global = { ...config.global, scrape_interval: targets.interval, evaluation_interval: targets.interval };
    delete config.global.scrape_timeout; // defaults to the interval
  }
  return stringify(config);
}
