/**
 * QR codes in the page: drawn as SVG (the invitation and the link PIN), and read from the camera:
 * the browser's BarcodeDetector where it has one, else jsQR on frames drawn to a canvas.
 */
import QRCode from 'qrcode';
import jsQRModule from 'jsqr';
import { h } from './ui.js';

// jsqr is CommonJS with a default export: the function is the module or its default
const jsQR = ((jsQRModule as unknown as { default?: unknown }).default ?? jsQRModule) as unknown as typeof jsQRModule.default;

/** An <img> of `text` as a QR code, with `alt` saying what it is. */
export async function qrImage(text: string, alt: string): Promise<HTMLImageElement> {
  const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return h('img', { class: 'qr', alt, src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}` });
}

interface Detector {
  detect(source: CanvasImageSource): Promise<{ rawValue: string }[]>;
}

function nativeDetector(): Detector | undefined {
  const B = (globalThis as { BarcodeDetector?: new (o: { formats: string[] }) => Detector }).BarcodeDetector;
  if (B === undefined) return undefined;
  try {
    return new B({ formats: ['qr_code'] });
  } catch {
    return undefined;
  }
}

/**
 * Read QR codes from the camera into `video` until `found` returns true (it gets each text read)
 * or the returned stop() is called. Throws when there is no camera or it is refused.
 */
export async function scanCamera(video: HTMLVideoElement, found: (text: string) => boolean): Promise<() => void> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  video.srcObject = stream;
  video.muted = true;
  video.setAttribute('playsinline', '');
  await video.play();
  const detector = nativeDetector();
  const canvas = document.createElement('canvas');
  const g = canvas.getContext('2d', { willReadFrequently: true });
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    for (const t of stream.getTracks()) t.stop();
    video.srcObject = null;
  };
  const tick = async (): Promise<void> => {
    if (stopped) return;
    let text: string | undefined;
    const w = video.videoWidth;
    const ht = video.videoHeight;
    if (w > 0 && ht > 0) {
      if (detector !== undefined) {
        text = (await detector.detect(video).catch(() => []))[0]?.rawValue;
      } else if (g !== null) {
        canvas.width = w;
        canvas.height = ht;
        g.drawImage(video, 0, 0, w, ht);
        text = jsQR(g.getImageData(0, 0, w, ht).data, w, ht, { inversionAttempts: 'dontInvert' })?.data;
      }
    }
    if (text !== undefined && text !== '' && found(text)) {
      stop();
      return;
    }
    setTimeout(() => void tick(), 150);
  };
  void tick();
  return stop;
}
