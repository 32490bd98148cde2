/**
 * The printed label: the claim QR code (the label URI, https://<portal>/claim#code=..&fp=..&m=..) with the model, serial, manufacturer, the
 * short device fingerprint and the typed claim code in readable text (label.svg), and the QR code
 * alone as a PNG (label.png). Both carry the claim secret: they are written 0600, like claim.json.
 * The QR library is imported lazily so the rest of the tool (and its --help) starts without it.
 */
import * as path from 'node:path';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { labelUri, parseClaimLabel, shortFingerprint, type ClaimLabel } from '../mesh/claim.js';
import { timingSafeEqual } from '../mesh/crypto.js';
import { normalizeUdf, parseKeyUdf } from '../mesh/udf.js';
import { hasDeviceDirectory, readDeviceDirectory, rewriteLabel } from '../runtime/device-files.js';
import { writeFileAtomic } from '../runtime/files.js';

export const LABEL_SVG = 'label.svg';
export const LABEL_PNG = 'label.png';

export interface LabelData {
  /** the claim URI the QR code carries */
  readonly uri: string;
  /** the claim code a person can type instead of scanning */
  readonly code: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  /** the short device fingerprint (also in the URI's fragment, fp=) */
  readonly fingerprint: string;
}

type QrModule = typeof import('qrcode');
let qrModule: Promise<QrModule> | undefined;
function qr(): Promise<QrModule> {
  qrModule ??= import('qrcode').then((m) => ((m as unknown as { default?: QrModule }).default ?? m) as QrModule);
  return qrModule;
}

const esc = (s: string): string => s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A dashed UDF in two lines, split between its groups. */
function halves(udf: string): [string, string] {
  const g = udf.split('-');
  const k = Math.ceil(g.length / 2);
  return [g.slice(0, k).join('-'), g.slice(k).join('-')];
}

/** The whole label, 60 mm x 25 mm: QR code on the left, text on the right. */
export async function renderLabelSvg(l: LabelData): Promise<string> {
  const q = await qr();
  const code = await q.toString(l.uri, { type: 'svg', errorCorrectionLevel: 'M' });
  const open = code.indexOf('<svg');
  if (open < 0) throw new MeshError('internal', 'the QR library returned no SVG');
  // nest the QR's own <svg> (viewBox in modules, quiet zone included) as a 200x200 box
  const qrSvg = code.slice(open).replace('<svg', '<svg x="0" y="0" width="200" height="200"').trim();
  const portal = parseClaimLabel(l.uri).portal;
  const [fp1, fp2] = halves(l.fingerprint);
  const [code1, code2] = halves(l.code);
  const text = (x: number, y: number, size: number, t: string, extra = ''): string => {
    // squeeze a long line (a long portal host) into the label instead of running off its edge
    const fit = t.length * size * 0.6 > 480 - x - 6 ? ` textLength="${480 - x - 6}" lengthAdjust="spacingAndGlyphs"` : '';
    return `    <text x="${x}" y="${y}" font-size="${size}"${fit}${extra}>${esc(t)}</text>`;
  };
  const bold = ' font-weight="bold"';
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<svg xmlns="http://www.w3.org/2000/svg" width="60mm" height="25mm" viewBox="0 0 480 200">',
    `  <title>${esc(`${l.manufacturer} ${l.model} ${l.serial}`)}</title>`,
    '  <rect width="480" height="200" fill="#ffffff"/>',
    `  ${qrSvg}`,
    '  <g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" fill="#000000">',
    text(204, 28, 20, l.manufacturer, bold),
    text(204, 52, 12, 'Model'),
    text(262, 52, 14, l.model),
    text(204, 70, 12, 'S/N'),
    text(262, 70, 14, l.serial),
    text(204, 88, 12, 'Device'),
    text(262, 88, 14, fp1),
    text(262, 104, 14, fp2),
    text(204, 128, 11, 'Scan, or type this code at'),
    text(204, 143, 11, portal),
    text(204, 166, 16, code1, bold),
    text(204, 186, 16, code2, bold),
    '  </g>',
    '</svg>',
    '',
  ].join('\n');
}

/** The QR code alone, PNG. */
export async function renderLabelPng(uri: string): Promise<Buffer> {
  const q = await qr();
  return q.toBuffer(uri, { type: 'png', errorCorrectionLevel: 'M' });
}

/** Write label.svg and label.png into a device directory (0600: they carry the claim secret). */
export async function writeLabels(dir: string, l: LabelData): Promise<void> {
  const [svg, png] = await Promise.all([renderLabelSvg(l), renderLabelPng(l.uri)]);
  writeFileAtomic(path.join(dir, LABEL_SVG), svg, 0o600);
  writeFileAtomic(path.join(dir, LABEL_PNG), png, 0o600);
}

/** An mcu:// label URI of before 140-bit fingerprints: its maker, portal and code, the fingerprint unchecked. */
const OLD_MCU = /^mcu:\/\/([a-z0-9][a-z0-9._-]{0,63})@([A-Za-z0-9.:[\]-]{1,260})\/([A-Za-z2-7-]{20,80})\?fp=([A-Za-z2-7-]{1,120})$/;

/**
 * Re-render the label of a provisioned device directory from its device.json and claim.json,
 * after checking that the claim URI names this device's fingerprint and holds its claim secret.
 * A directory made before labels carried 140-bit fingerprints (an mcu:// URI with a 100-bit one,
 * which no longer claims) gets the current https:// URI and fingerprint first, in claim.json and
 * device.json: its label must be printed again.
 */
export async function relabel(dir: string): Promise<{ dir: string; serial: string; files: string[]; upgraded?: boolean }> {
  if (!hasDeviceDirectory(dir)) throw new MeshError('state', `${dir} is not a provisioned device directory (no device.json and keys.json)`, { dir });
  let d = readDeviceDirectory(dir);
  let upgraded = false;
  let label: ClaimLabel;
  try {
    label = parseClaimLabel(d.claimUri);
  } catch (e) {
    const old = OLD_MCU.exec(d.claimUri.trim());
    if (!isMeshError(e, 'udf-too-short') || old === null) throw e;
    const [, , portal, code, fp] = old as unknown as [string, string, string, string, string];
    if (normalizeUdf(fp) !== normalizeUdf(d.fingerprint) || !normalizeUdf(d.id).startsWith(normalizeUdf(fp))) {
      throw new MeshError('fingerprint-mismatch', `claim.json's URI names device ${fp}, but ${dir} holds device ${d.fingerprint}`);
    }
    const secret = parseKeyUdf(code);
    if (secret.length !== d.claimSecret.length || !timingSafeEqual(secret, d.claimSecret)) throw new MeshError('state', `claim.json in ${dir} is inconsistent: its URI and its secret differ`);
    const fingerprint = shortFingerprint(d.id);
    rewriteLabel(dir, { uri: labelUri({ manufacturer: d.manufacturer, portal, secret: d.claimSecret, fingerprint }), fingerprint });
    d = readDeviceDirectory(dir);
    label = parseClaimLabel(d.claimUri);
    upgraded = true;
  }
  if (label.fingerprint !== d.fingerprint) {
    throw new MeshError('fingerprint-mismatch', `claim.json's URI names device ${label.fingerprint}, but ${dir} holds device ${d.fingerprint}`);
  }
  if (!timingSafeEqual(label.secret, d.claimSecret)) throw new MeshError('state', `claim.json in ${dir} is inconsistent: its URI and its secret differ`);
  await writeLabels(dir, { uri: d.claimUri, code: d.claimCode, manufacturer: d.manufacturer, model: d.model, serial: d.serial, fingerprint: d.fingerprint });
  return { dir, serial: d.serial, files: [path.join(dir, LABEL_SVG), path.join(dir, LABEL_PNG)], ...(upgraded ? { upgraded } : {}) };
}
