// The build scripts' one way to write esbuild's output files: only when a file changed, and by
// rename, so a test, bench or portal reading dist while another build runs never sees half a file.
// Returns how many files were already up to date.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export function writeChanged(outputFiles) {
  let same = 0;
  for (const f of outputFiles) {
    let old;
    try {
      old = readFileSync(f.path);
    } catch {
      old = undefined;
    }
    if (old !== undefined && Buffer.compare(old, f.contents) === 0) {
      same++;
      continue;
    }
    writeFileSync(`${f.path}.tmp`, f.contents);
    renameSync(`${f.path}.tmp`, f.path);
  }
  return same;
}
