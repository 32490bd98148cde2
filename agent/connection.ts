/**
 * The device's link to its portal: registration (and registering again when the portal no longer
 * knows the device), and the MQTT push channel. One state, as a union, handled by exhaustive
 * switches; retries on the one backoff schedule (runtime/backoff.ts), reset after every success
 * so that a broker that blinked five times is reconnected to within the base delay the sixth.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { b64u } from '../mesh/bytes.js';
import { sealClaimBlob, type ClaimSecrets } from '../mesh/claim.js';
import { createSession, verifyPortalProfile } from '../mesh/messages.js';
import { deviceTopic } from '../mesh/protocol.js';
import { logOrigin } from '../mesh/checkpoint.js';
import { normalizeUdf } from '../mesh/udf.js';
import type { LogKey } from '../mesh/feedlog.js';
import { payloadBytes } from '../mesh/envelope.js';
import { parseDevicePayload } from '../mesh/profiles.js';
import type { PortalClient } from '../client/portal-client.js';
import type { DeviceFiles } from '../runtime/device-files.js';
import { backoff, type Backoff } from '../runtime/backoff.js';
import { isoNow, sleep, type Clock, type Timer } from '../runtime/clock.js';
import { MqttLite, parseMqttUrl } from '../runtime/mqtt-lite.js';
import type { StateStore } from './store.js';

export type ConnectionState =
  | { readonly kind: 'starting' }
  | { readonly kind: 'registering'; readonly attempt: number }
  | { readonly kind: 'online' }
  | { readonly kind: 'offline'; readonly code: string; readonly retryMs: number }
  | { readonly kind: 'stopped' };

export type Log = (event: string, data: Record<string, unknown>) => void;

export interface PortalLink {
  /** the portal's log key (its signing key, pinned on first contact or by agent.json portalKey) and its log's origin: its checkpoints */
  readonly logKey: LogKey;
  /** the broker the portal names, if any */
  readonly mqtt: string | null;
}

/**
 * What an owner opens with the label: the device profile, its endorsement, the ownership epoch,
 * and the schemas of the applications the profile declares (the owner checks each against the
 * fingerprint in the signed profile).
 */
export function claimRecord(p: { readonly device: DeviceFiles; readonly schemas: ReadonlyMap<string, unknown>; readonly store: StateStore }): Record<string, unknown> {
  const declared = parseDevicePayload(payloadBytes(p.device.profile)).apps ?? [];
  const schemas: Record<string, unknown> = {};
  for (const a of declared) {
    const s = p.schemas.get(a.name);
    if (s !== undefined) schemas[a.name] = s;
  }
  return { profile: p.device.profile, endorsement: p.device.endorsement, epoch: p.store.state.epoch, ...(declared.length > 0 ? { schemas } : {}) };
}

/** Register the device with the portal, retrying with backoff until it succeeds or `signal` aborts. */
export async function register(p: {
  readonly client: PortalClient;
  readonly device: DeviceFiles;
  readonly secrets: ClaimSecrets;
  /** the schemas of the applications the device runs: sealed with its profile, for the owners to check values before they publish */
  readonly schemas: ReadonlyMap<string, unknown>;
  readonly store: StateStore;
  /** the portal's key the device's image pins (agent.json portalKey: the portal's UDF), or null to pin it on first contact */
  readonly portalKey: string | null;
  readonly clock: Clock;
  readonly log: Log;
  readonly signal: AbortSignal;
  readonly onState: (s: ConnectionState) => void;
}): Promise<PortalLink> {
  const delays = backoff(500, 30_000, () => p.clock.random());
  for (let attempt = 1; ; attempt++) {
    p.signal.throwIfAborted();
    p.onState({ kind: 'registering', attempt });
    try {
      const hello = await p.client.hello();
      const portal = verifyPortalProfile(hello.portal);
      const pinned = p.portalKey ?? p.store.state.portalKey;
      if (pinned !== null && samePortal(pinned, portal.id) === false) {
        throw new MeshError('bad-key', `the portal's key is ${portal.id}, not ${pinned} ${p.portalKey !== null ? '(agent.json portalKey)' : '(pinned on first contact)'}; refusing to trust it`);
      }
      await p.client.register({
        device: p.device.profile,
        endorsement: p.device.endorsement,
        claim: { id: p.secrets.claimId, blob: sealClaimBlob(p.secrets, claimRecord(p)), portalKey: b64u(p.secrets.portalKey) },
        // fresh by the portal's clock (a challenge), so a board whose clock says 1970 registers
        request: await p.client.sessionRequest(p.device.keys.auth, p.device.id),
      });
      p.store.update((s) => ({ ...s, registered: true, portalKey: portal.id, lastContact: isoNow(p.clock) }));
      p.log('registered', { device: p.device.id, portal: portal.id });
      return { logKey: { name: logOrigin(portal.name), publicKey: portal.sign }, mqtt: hello.mqtt };
    } catch (e) {
      const retryMs = delays.next();
      const code = isMeshError(e) ? e.code : 'unavailable';
      p.log('register-failed', { code, message: (e as Error).message, retryMs });
      p.onState({ kind: 'offline', code, retryMs });
      await sleep(p.clock, retryMs, p.signal);
    }
  }
}

/**
 * The push channel: MQTT on the device's own topic. A message is only a hint that the feed has
 * something (`onHint`): the feed number in it is not signed. After every (re)subscription the feed
 * is polled (`onUp`), which catches up on anything missed while disconnected.
 */
export class Push {
  private client: MqttLite | undefined;
  private timer: Timer | undefined;
  private stopped = false;
  /** the reconnect schedule; back to the base delay once a connection is up and subscribed */
  readonly delays: Backoff;

  constructor(
    private readonly p: {
      readonly url: string;
      readonly device: DeviceFiles;
      readonly clock: Clock;
      readonly log: Log;
      readonly onHint: (payload: Buffer) => void;
      readonly onUp: () => void;
      /** the MQTT password for each connection attempt (default: a signed session request without a challenge, judged by its time; the agent passes one with a challenge) */
      readonly password?: () => Promise<string>;
    },
  ) {
    this.delays = backoff(500, 30_000, () => p.clock.random());
  }

  /** Start connecting (in the background, retrying); throws `usage` at once for a URL the device cannot speak (only mqtt:// and mqtts://). */
  async start(): Promise<void> {
    parseMqttUrl(this.p.url);
    await this.attempt();
  }

  private retry(retryMs: number): void {
    this.timer = this.p.clock.setTimer(() => {
      this.attempt().catch((e: unknown) => this.p.log('push-error', { message: (e as Error).message }));
    }, retryMs);
  }

  /** An attempt that failed before a connection: logged, and the next one on the schedule. */
  private failed(e: unknown): void {
    if (this.stopped) return;
    const retryMs = this.delays.next();
    this.p.log('push-error', { message: (e as Error).message, retryMs });
    this.retry(retryMs);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    const { device, clock, log } = this.p;
    let password: string;
    try {
      password = this.p.password !== undefined ? await this.p.password() : JSON.stringify(createSession(device.keys.auth, device.id));
    } catch (e) {
      // no password now (the portal did not answer for a challenge): try again on the same schedule
      this.failed(e);
      return;
    }
    if (this.stopped) return;
    const clientId = `mmm-${device.id.slice(0, 24)}-${Math.floor(clock.random() * 1e9).toString(36)}`;
    let c: MqttLite;
    try {
      c = await MqttLite.connect({ url: this.p.url, clientId, username: device.id, password, keepaliveS: 30, connectTimeoutMs: 10_000, clock });
    } catch (e) {
      this.failed(e);
      return;
    }
    if (this.stopped) {
      c.destroy();
      return;
    }
    this.client = c;
    c.onMessage((_topic, payload) => this.p.onHint(payload));
    c.onClose((err) => {
      if (this.stopped || this.client !== c) return;
      this.client = undefined;
      const retryMs = this.delays.next();
      log('push-disconnected', { retryMs, ...(err !== undefined ? { message: err.message } : {}) });
      this.retry(retryMs);
    });
    try {
      await c.subscribe(deviceTopic(device.id), 1);
    } catch (e) {
      // refused: drop the link (its close schedules the retry); closed meanwhile: the close did
      if (!this.stopped && c.connected) {
        log('push-subscribe-failed', { message: (e as Error).message });
        c.destroy();
      }
      return;
    }
    this.delays.reset();
    log('push-connected', { url: this.p.url });
    this.p.onUp();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    const c = this.client;
    this.client = undefined;
    if (c !== undefined) await c.end().catch(() => undefined);
  }
}

/** Whether a pinned portal key (a UDF, as printed or typed) names this portal's; a pin that is not a UDF never does. */
function samePortal(pinned: string, id: string): boolean {
  try {
    return normalizeUdf(pinned) === normalizeUdf(id);
  } catch {
    return false;
  }
}
