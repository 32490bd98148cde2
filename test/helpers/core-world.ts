/** The in-process owners and device of the pure-core tests; they live in harness/ (the long model run uses them too). */
export * from '../../harness/core-world.js';
