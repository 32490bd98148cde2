/**
 * runtime/files.ts, the one atomic-write path: whole file or nothing, its mode, no temp file left
 * behind by a failed write, createFileOnce never overwrites, cleanTempFiles removes what a crash left.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanTempFiles, createFileOnce, readTextIfExists, writeFileAtomic, writeJsonAtomic } from '../runtime/files.js';

function tmpDir(t: { teardown: (f: () => void) => void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-files-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const leftovers = (d: string): string[] => fs.readdirSync(d).filter((n) => n.endsWith('.tmp'));

test('writeFileAtomic writes, replaces, keeps the mode it is given, and leaves no temp file', (t) => {
  const d = tmpDir(t);
  const f = path.join(d, 'sub', 'state.json');
  writeFileAtomic(f, 'one', 0o600);
  t.is(fs.readFileSync(f, 'utf8'), 'one');
  t.is(fs.statSync(f).mode & 0o777, 0o600);
  const big = Buffer.alloc(3 * 1024 * 1024, 'mesh');
  writeFileAtomic(f, big, 0o644);
  t.true(fs.readFileSync(f).equals(big));
  t.is(fs.statSync(f).mode & 0o777, 0o644);
  writeJsonAtomic(f, { a: 1 });
  t.deepEqual(JSON.parse(readTextIfExists(f) ?? ''), { a: 1 });
  t.deepEqual(leftovers(path.dirname(f)), []);
  t.is(readTextIfExists(path.join(d, 'none')), undefined);
});

test('a write that cannot be renamed into place leaves the old state and no temp file', (t) => {
  const d = tmpDir(t);
  const f = path.join(d, 'state.json');
  fs.mkdirSync(f); // a directory where the file should go: rename fails
  t.throws(() => writeFileAtomic(f, 'x'));
  t.true(fs.statSync(f).isDirectory());
  t.deepEqual(leftovers(d), []);
});

test('createFileOnce makes the file once and never overwrites', (t) => {
  const d = tmpDir(t);
  const f = path.join(d, 'key.json');
  t.true(createFileOnce(f, 'first'));
  t.false(createFileOnce(f, 'second'));
  t.is(fs.readFileSync(f, 'utf8'), 'first');
  t.deepEqual(leftovers(d), []);
});

test('cleanTempFiles removes the temp files a crash left, and nothing else', (t) => {
  const d = tmpDir(t);
  fs.writeFileSync(path.join(d, '.state.json.123.abcd.tmp'), 'half');
  fs.writeFileSync(path.join(d, 'state.json'), 'whole');
  fs.writeFileSync(path.join(d, 'notes.tmp'), 'not ours: no leading dot');
  cleanTempFiles(d);
  t.deepEqual(fs.readdirSync(d).sort(), ['notes.tmp', 'state.json']);
  cleanTempFiles(path.join(d, 'missing'));
});
