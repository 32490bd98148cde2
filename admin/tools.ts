/**
 * Commands that need no state: fingerprints (udf.md) and Shamir shares.
 */
import * as fs from 'node:fs';
import { fromHex, hex } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { authenticatorUdf, contentUdf, UDF_DEFAULT_BITS } from '../mesh/udf.js';
import { recoverSecret, splitSecret } from '../mesh/shamir.js';
import { intOpt, needStr, strOpt, type Command } from './command.js';

async function readInput(file: string | undefined): Promise<Uint8Array> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  }
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    throw new MeshError('not-found', `cannot read ${file}: ${(e as Error).message}`);
  }
}

export const udfCommand: Command = {
  name: 'udf',
  summary: 'print the fingerprint (UDF) of a file or of standard input',
  help: `usage: mesh udf --content-type TYPE [--sha3] [--bits N] [--key KEYSTRING] [FILE|-]

Prints the Uniform Data Fingerprint of FILE (or of standard input with "-" or no FILE)
on one line: a SHA-2-512 content digest (SHA-3-512 with --sha3), cut to --bits bits
(a multiple of 20 from 100 to 440; default ${UDF_DEFAULT_BITS}). With --key, prints the keyed
authenticator UDF instead (HMAC-SHA-512 under KEYSTRING).

  --content-type TYPE   the data's content type, e.g. text/plain (part of what is fingerprinted)
  --sha3                use SHA-3-512 instead of SHA-2-512
  --bits N              precision in bits (default ${UDF_DEFAULT_BITS})
  --key KEYSTRING       make an authenticator UDF keyed with KEYSTRING
  --json                print {"udf": ...}

example: printf 'UDF Data Value' | mesh udf --content-type text/plain`,
  options: { 'content-type': { type: 'string' }, sha3: { type: 'boolean' }, bits: { type: 'string' }, key: { type: 'string' } },
  async run(v, pos, env) {
    const ct = needStr(v, 'content-type', 'the content type of the data, e.g. --content-type text/plain');
    const bits = intOpt(v, 'bits', UDF_DEFAULT_BITS, 100, 440);
    if (bits % 20 !== 0) throw new MeshError('usage', `--bits must be a multiple of 20 (100, 120, 140, ... 440), got ${bits}`);
    if (pos.length > 1) throw new MeshError('usage', 'give one FILE (or - for standard input)');
    const key = strOpt(v, 'key');
    if (key !== undefined && v.sha3 === true) throw new MeshError('usage', '--key makes an authenticator UDF, which is always HMAC-SHA-512: drop --sha3');
    const data = await readInput(pos[0]);
    const udf = key !== undefined ? authenticatorUdf(data, ct, key, bits) : contentUdf(data, ct, { alg: v.sha3 === true ? 'sha3' : 'sha2', bits });
    env.io.out(udf, { udf });
  },
};

export const keyShareCommand: Command = {
  name: 'key share',
  summary: 'split a secret into K-of-N recovery shares',
  help: `usage: mesh key share SECRET_HEX --quorum K --shares N

Splits SECRET_HEX (16 or 32 bytes, as hex) into N share UDFs, one a line; any K of them
rebuild the secret (mesh key recover), fewer reveal nothing.

  --quorum K    how many shares rebuild the secret (2..15)
  --shares N    how many shares to make (K..16)
  --json        print {"shares": [...]}`,
  options: { quorum: { type: 'string' }, shares: { type: 'string' } },
  async run(v, pos, env) {
    if (pos.length !== 1) throw new MeshError('usage', 'give the secret as one hex string (32 or 64 hex digits)');
    const secret = fromHex(pos[0] as string, 'the secret');
    if (strOpt(v, 'quorum') === undefined || strOpt(v, 'shares') === undefined) throw new MeshError('usage', '--quorum K and --shares N are both required');
    const k = intOpt(v, 'quorum', 3, 2, 15);
    const n = intOpt(v, 'shares', 5, k, 16);
    const shares = splitSecret(secret, k, n);
    env.io.out(shares.join('\n'), { quorum: k, shares });
  },
};

export const keyRecoverCommand: Command = {
  name: 'key recover',
  summary: 'rebuild a secret from recovery shares',
  help: `usage: mesh key recover SHARE SHARE ...

Rebuilds the secret from at least K of its share UDFs and prints it as lowercase hex.
A mistyped share, or shares from different splits, fail with bad-share.

  --json        print {"secret": "..."}`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length === 0) throw new MeshError('usage', 'give the shares, separated by spaces');
    const secret = hex(recoverSecret(pos));
    env.io.out(secret, { secret });
  },
};
