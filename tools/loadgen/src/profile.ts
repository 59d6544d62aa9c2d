// `node dist/tools/loadgen/src/profile.js DIR [--mark=broadcast] [--top=30]`: self time per
// function over the measurement window of every .cpuprofile in DIR (profile-summary.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags } from '../../kit/src/flags.js';
import { type CpuProfile, formatSummary, summarize } from './profile-summary.js';

const USAGE = 'usage: node dist/tools/loadgen/src/profile.js DIR [--mark=FUNCTION] [--top=N]';
const parsed = parseFlags(process.argv.slice(2), { mark: 'string', top: 'string' });
if (!parsed.ok || parsed.flags.positional.length !== 1) {
  process.stderr.write(`profile: ${parsed.ok ? 'one directory expected' : parsed.error}\n${USAGE}\n`);
  process.exit(2);
}
const { values, positional } = parsed.flags;
const dir = positional[0]!;
const top = Number(values.get('top') ?? 30);
const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
if (files.length === 0 || !Number.isInteger(top) || top < 1) {
  process.stderr.write(`profile: ${files.length === 0 ? `no .cpuprofile in ${dir}` : '--top must be a whole number'}\n${USAGE}\n`);
  process.exit(2);
}
const profiles = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile);
process.stdout.write(`${formatSummary(summarize(profiles, String(values.get('mark') ?? 'broadcast')), top)}\n`);
