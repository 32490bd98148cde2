/**
 * Progress of a batch on stderr. On a terminal: one line redrawn at most 10 times a second
 * (bar, count, rate, ETA). Otherwise (a pipe, a log, or --json): a plain line at every 10%.
 * Small batches show nothing: they are over before a bar helps.
 */
import type { BatchProgress } from './batch.js';

export const PROGRESS_MIN_DEVICES = 50;

export interface ProgressReporter {
  readonly onProgress: (p: BatchProgress) => void;
  /** end the redrawn line (call on success and on failure) */
  finish(): void;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '--';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function progressReporter(p: { total: number; tty: boolean; write: (s: string) => void; name?: string }): ProgressReporter {
  const name = p.name ?? 'mesh-provision';
  if (p.total < PROGRESS_MIN_DEVICES) return { onProgress: () => {}, finish: () => {} };
  let drawn = false;
  let lastDraw = 0;
  let lastDecile = -1;
  const pct = (x: BatchProgress): number => Math.floor((x.done * 100) / x.total);
  const stats = (x: BatchProgress): string => `${x.rate.toFixed(1)} devices/s, ETA ${formatDuration(x.etaMs)}`;
  if (p.tty) {
    return {
      onProgress(x) {
        const now = Date.now();
        if (now - lastDraw < 100 && x.done < x.total) return;
        lastDraw = now;
        const width = 24;
        const fill = Math.round((x.done * width) / x.total);
        const bar = '#'.repeat(fill) + '-'.repeat(width - fill);
        p.write(`\r\x1b[2K[${bar}] ${x.done}/${x.total} ${String(pct(x)).padStart(3)}%  ${stats(x)}`);
        drawn = true;
      },
      finish() {
        if (drawn) p.write('\n');
        drawn = false;
      },
    };
  }
  return {
    onProgress(x) {
      const decile = Math.floor((x.done * 10) / x.total);
      if (decile <= lastDecile || decile === 0) return;
      lastDecile = decile;
      p.write(`${name}: ${x.done}/${x.total} (${decile * 10}%), ${stats(x)}\n`);
    },
    finish() {},
  };
}
