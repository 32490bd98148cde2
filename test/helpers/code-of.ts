import { isMeshError } from '../../mesh/errors.js';

/** The MeshError code `fn` throws, 'no error', or a description of a crash that is not a MeshError. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (e) {
    if (isMeshError(e)) return e.code;
    return `not a MeshError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}
