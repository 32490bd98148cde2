/**
 * The baseline for unchanged polls/s: a bare node:http server answering every request with the
 * same bytes an unchanged Download gets from the portal (same headers and body), in its own
 * process, driven by the same load tool. Prints "bare-server ready PORT".
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

const body = '{"n":1,"items":[]}';
const server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), 'content-type': 'application/json' });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.maxRequestsPerSocket = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`bare-server ready ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
