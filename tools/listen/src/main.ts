// `npm run listen -- news [more channels]`: a WebSocket client with nothing to download. It
// subscribes to the channels and prints each frame the gateway sends, one per line.
//   --url ws://host:port   the gateway or the load balancer (default ws://127.0.0.1:8080)
//   --token JWT            sent as ?token= when the gateway requires auth
import WebSocket from 'ws';
import { parseFlags } from '../../kit/src/flags.js';

const USAGE = 'usage: npm run listen -- [--url ws://127.0.0.1:8080] [--token JWT] CHANNEL [CHANNEL...]';

function fail(message: string, code: number): never {
  process.stderr.write(`listen: ${message}\n`);
  process.exit(code);
}

const parsed = parseFlags(process.argv.slice(2), { url: 'string', token: 'string', help: 'boolean' });
if (!parsed.ok) fail(`${parsed.error}\n${USAGE}`, 2);
const { values, positional } = parsed.flags;
if (values.has('help')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (positional.length === 0) fail(`name at least one channel\n${USAGE}`, 2);

const url = new URL('/ws', String(values.get('url') ?? 'ws://127.0.0.1:8080'));
url.searchParams.set('channels', positional.join(','));
const token = values.get('token');
if (typeof token === 'string') url.searchParams.set('token', token);

const ws = new WebSocket(url);
ws.on('open', () => process.stderr.write(`listen: connected to ${url.origin}, channels ${positional.join(', ')}; Ctrl-C stops\n`));
ws.on('message', (data: Buffer) => process.stdout.write(`${data.toString('utf8')}\n`));
// A refused upgrade (403, 401, 503) says why in its body; ws hands over the response.
ws.on('unexpected-response', (_req, res) => {
  let body = '';
  res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
  res.on('end', () => fail(`upgrade refused: ${res.statusCode} ${body.trim()}`, 1));
});
ws.on('error', (err) => fail(err.message, 1));
ws.on('close', (code, reason) => fail(`closed: ${code} ${reason.toString('utf8')}`, code === 1000 ? 0 : 1));
process.once('SIGINT', () => ws.close(1000));
