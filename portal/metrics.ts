/**
 * Prometheus text exposition (format 0.0.4) of the portal's counters, one histogram and gauges
 * read at scrape time, followed by the process and Node.js runtime series and mesh_build_info
 * (runtime/process-metrics.ts). Hand-written: a handful of series does not need a client library.
 */
import { ProcessMetrics, escapeLabel as esc, series } from '../runtime/process-metrics.js';

const BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export type Gauges = Readonly<Record<string, { readonly help: string; readonly value: number }>>;

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();
  mqttPublishes = 0;
  mqttPublishFailures = 0;
  mqttAuthFailures = 0;
  private readonly process = new ProcessMetrics('mesh-portal');

  /** One answered request: its transaction name, HTTP status and duration. */
  observe(tx: string, status: number, seconds: number): void {
    const k = `${tx}\u0000${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    let h = this.durations.get(tx);
    if (h === undefined) {
      h = { counts: BUCKETS_S.map(() => 0), sum: 0, count: 0 };
      this.durations.set(tx, h);
    }
    for (let i = 0; i < BUCKETS_S.length; i++) if (seconds <= (BUCKETS_S[i] as number)) h.counts[i] = (h.counts[i] as number) + 1;
    h.sum += seconds;
    h.count++;
  }

  /** `gauges` and `counters` read at scrape time (a counter's name gets `_total`). */
  render(gauges: Gauges, counters: Gauges = {}): string {
    const out: string[] = [];
    out.push('# HELP mesh_portal_requests_total Requests answered, by transaction and HTTP status.');
    out.push('# TYPE mesh_portal_requests_total counter');
    for (const [k, v] of [...this.requests].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [tx, status] = k.split('\u0000') as [string, string];
      out.push(`mesh_portal_requests_total{transaction="${esc(tx)}",status="${status}"} ${v}`);
    }
    out.push('# HELP mesh_portal_request_duration_seconds Time from request to response (long polls include their wait).');
    out.push('# TYPE mesh_portal_request_duration_seconds histogram');
    for (const [tx, h] of [...this.durations].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const l = `transaction="${esc(tx)}"`;
      BUCKETS_S.forEach((le, i) => out.push(`mesh_portal_request_duration_seconds_bucket{${l},le="${le}"} ${h.counts[i] ?? 0}`));
      out.push(`mesh_portal_request_duration_seconds_bucket{${l},le="+Inf"} ${h.count}`);
      out.push(`mesh_portal_request_duration_seconds_sum{${l}} ${h.sum}`);
      out.push(`mesh_portal_request_duration_seconds_count{${l}} ${h.count}`);
    }
    const counter = (name: string, help: string, v: number): void => series(out, name, 'counter', help, v);
    counter('mesh_portal_mqtt_publishes_total', 'Feed items published to MQTT.', this.mqttPublishes);
    counter('mesh_portal_mqtt_publish_failures_total', 'Feed items that could not be published to MQTT (devices catch up by Download).', this.mqttPublishFailures);
    counter('mesh_portal_mqtt_auth_failures_total', 'MQTT connections refused.', this.mqttAuthFailures);
    for (const [name, c] of Object.entries(counters)) counter(`mesh_portal_${name}_total`, c.help, c.value);
    for (const [name, g] of Object.entries(gauges)) {
      series(out, `mesh_portal_${name}`, 'gauge', g.help, g.value);
    }
    return out.join('\n') + '\n' + this.process.render();
  }
}
