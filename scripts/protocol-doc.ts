/**
 * docs/protocol.md, generated from the code (harness/protocol-examples.ts holds the examples and the prose):
 *
 *   npx tsc -p . && node dist/scripts/protocol-doc.js > docs/protocol.md
 */
import { buildExamples, renderDocument } from '../harness/protocol-examples.js';

process.stdout.write(renderDocument(buildExamples()));
