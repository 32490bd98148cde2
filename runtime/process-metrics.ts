/**
 * Process and Node.js runtime metrics in the Prometheus text format (0.0.4), named as the
 * Prometheus client libraries name them (the "process_" collector of every official client, the
 * "nodejs_" ones of prom-client), so the usual dashboards and alerts work unchanged:
 *
 *   process_cpu_user_seconds_total, process_cpu_system_seconds_total, process_cpu_seconds_total,
 *   process_start_time_seconds, process_resident_memory_bytes, process_virtual_memory_bytes,
 *   process_open_fds, process_max_fds, nodejs_heap_size_total_bytes, nodejs_heap_size_used_bytes,
 *   nodejs_external_memory_bytes, nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds,
 *   nodejs_version_info, and mesh_build_info{version,nodejs,arch} (a gauge of 1: the build running).
 *
 * The event-loop figures come from perf_hooks.monitorEventLoopDelay and, as in prom-client, cover
 * the time since the previous scrape. That histogram records the whole time between two samples
 * (the 10 ms sampling interval plus the delay); the interval is subtracted here (except from the
 * standard deviation), so an idle loop shows about 0 rather than 0.010. Reading /proc is Linux only; elsewhere those series are left out.
 */
import * as fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { VERSION } from './version.js';

/** A label value escaped as the text format wants (backslash, newline, double quote). */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function labels(l: Readonly<Record<string, string>>): string {
  const e = Object.entries(l);
  return e.length === 0 ? '' : `{${e.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** One sample per series, with HELP and TYPE lines. */
export function series(out: string[], name: string, type: 'counter' | 'gauge', help: string, value: number, l: Readonly<Record<string, string>> = {}): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels(l)} ${Number.isFinite(value) ? value : 0}`);
}

function procStat(): { vsize: number } | null {
  try {
    // /proc/self/stat: the command name (field 2) may hold spaces; fields after ")" are fixed (proc(5))
    const s = fs.readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { vsize: Number(f[20]) };
  } catch {
    return null;
  }
}

function fds(): { open: number; max: number } | null {
  try {
    const open = fs.readdirSync('/proc/self/fd').length;
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return { open, max: m?.[1] === undefined || m[1] === 'unlimited' ? -1 : Number(m[1]) };
  } catch {
    return null;
  }
}

const RESOLUTION_MS = 10;

export class ProcessMetrics {
  private readonly loop: IntervalHistogram;
  private readonly startS = Math.round((Date.now() - process.uptime() * 1000) / 1000);

  constructor(private readonly program: string) {
    this.loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.loop.enable();
  }

  render(): string {
    const out: string[] = [];
    const cpu = process.cpuUsage();
    series(out, 'process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.', cpu.user / 1e6);
    series(out, 'process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.', cpu.system / 1e6);
    series(out, 'process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', (cpu.user + cpu.system) / 1e6);
    series(out, 'process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', this.startS);
    const mem = process.memoryUsage();
    series(out, 'process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', mem.rss);
    const st = procStat();
    if (st !== null) series(out, 'process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', st.vsize);
    const fd = fds();
    if (fd !== null) {
      series(out, 'process_open_fds', 'gauge', 'Number of open file descriptors.', fd.open);
      if (fd.max >= 0) series(out, 'process_max_fds', 'gauge', 'Maximum number of open file descriptors.', fd.max);
    }
    series(out, 'nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.', mem.heapTotal);
    series(out, 'nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.', mem.heapUsed);
    series(out, 'nodejs_external_memory_bytes', 'gauge', 'Node.js external memory size in bytes.', mem.external);
    const h = this.loop;
    const s = (ns: number): number => (Number.isFinite(ns) ? Math.max(0, ns / 1e9 - RESOLUTION_MS / 1e3) : 0);
    const n = h.count > 0;
    series(out, 'nodejs_eventloop_lag_min_seconds', 'gauge', 'The minimum recorded event loop delay.', n ? s(h.min) : 0);
    series(out, 'nodejs_eventloop_lag_max_seconds', 'gauge', 'The maximum recorded event loop delay.', n ? s(h.max) : 0);
    series(out, 'nodejs_eventloop_lag_mean_seconds', 'gauge', 'The mean of the recorded event loop delays.', n ? s(h.mean) : 0);
    series(out, 'nodejs_eventloop_lag_stddev_seconds', 'gauge', 'The standard deviation of the recorded event loop delays.', n && Number.isFinite(h.stddev) ? h.stddev / 1e9 : 0);
    series(out, 'nodejs_eventloop_lag_p50_seconds', 'gauge', 'The 50th percentile of the recorded event loop delays.', n ? s(h.percentile(50)) : 0);
    series(out, 'nodejs_eventloop_lag_p90_seconds', 'gauge', 'The 90th percentile of the recorded event loop delays.', n ? s(h.percentile(90)) : 0);
    series(out, 'nodejs_eventloop_lag_p99_seconds', 'gauge', 'The 99th percentile of the recorded event loop delays.', n ? s(h.percentile(99)) : 0);
    h.reset();
    const [major = '0', minor = '0', patch = '0'] = process.versions.node.split('.');
    series(out, 'nodejs_version_info', 'gauge', 'Node.js version info.', 1, { version: process.version, major, minor, patch });
    series(out, 'mesh_build_info', 'gauge', 'The running build: always 1, the labels tell which.', 1, { program: this.program, version: VERSION, nodejs: process.version, arch: process.arch });
    return out.join('\n') + '\n';
  }

  close(): void {
    this.loop.disable();
  }
}
