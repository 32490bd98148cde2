/**
 * node dist/bench/rr-proxy.js PORT [PORT...]: the round-robin TCP proxy of the tests
 * (harness/proxy.ts) as its own process, so the load generator and the proxy do not share
 * one event loop. Prints "rr-proxy ready PORT".
 */
import { roundRobinProxy } from '../harness/proxy.js';

const ports = process.argv.slice(2).map(Number);
if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0)) {
  process.stderr.write('usage: rr-proxy.js PORT [PORT...]\n');
  process.exit(2);
}
const proxy = await roundRobinProxy(ports);
process.stdout.write(`rr-proxy ready ${proxy.port}\n`);
process.on('SIGTERM', () => {
  void proxy.close().then(() => process.exit(0));
});
