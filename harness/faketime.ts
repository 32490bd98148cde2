/**
 * A faked clock for a whole child process (Debian's libfaketime), set through the environment so
 * the child is node itself (the `faketime` wrapper forks, and a signal to it would not reach node).
 * `spec` is libfaketime's FAKETIME: '+1d' (a day ahead, ticking), '@1970-01-02 00:00:00' (starts
 * there and ticks). For tests and scripts only.
 */
import * as fs from 'node:fs';

const LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/faketime/libfaketimeMT.so.1'];

export function fakeTimeEnv(spec: string): Record<string, string> {
  const lib = LIBS.find((f) => fs.existsSync(f));
  if (lib === undefined) throw new Error('libfaketime is not installed: apt-get install -y faketime (.ci/run installs it when missing)');
  return { LD_PRELOAD: lib, FAKETIME: spec };
}
