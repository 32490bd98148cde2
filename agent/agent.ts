/**
 * The device agent: registers the baked-in device profile, waits for claims, hears pushes over
 * MQTT with HTTP polling as the fallback, and turns its owners' application profiles into the
 * effective local configuration, headlessly.
 *
 * Every feed item goes through one queue (`handle`), in feed order, whether it came by push or
 * by poll, so pushes and polls never interleave. A pushed item is applied at once only when it is
 * the next in the feed (n = cursor + 1); any gap makes the agent poll.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { payloadBytes } from '../mesh/envelope.js';
import { deriveClaimSecrets, sealClaimBlob, type ClaimSecrets } from '../mesh/claim.js';
import { createSession, createStatus, verifyClaim, verifyRemove, verifyTreeHead, verifyPortalProfile, parseClaimPayload, parseRemovePayload, type StatusError } from '../mesh/messages.js';
import { parseMasterPayload, verifyApplicationProfile, verifyMasterProfile, openApplicationProfile, parseApplicationPayload, type MasterProfile } from '../mesh/profiles.js';
import { signKeyId } from '../mesh/keys.js';
import { parseFeedItem, deviceTopic, type FeedItem } from '../mesh/protocol.js';
import { parseJson, type Json } from '../mesh/json.js';
import { PortalClient } from '../client/portal-client.js';
import { type AgentSettings, type DeviceFiles } from '../runtime/device-files.js';
import { fsyncDir } from '../runtime/files.js';
import { backoff as mkBackoff } from '../runtime/backoff.js';
import { checkSchema, validate, type Schema } from '../mesh/schema.js';
import { merge, nextValues, type Effective } from './merge.js';
import { loadState, saveState, withError, type AgentState, type Owner } from './state.js';

export type ConnectionState = 'starting' | 'registering' | 'online' | 'offline' | 'stopped';

export interface AgentOptions {
  readonly dir: string;
  readonly device: DeviceFiles;
  readonly settings: AgentSettings;
  readonly schemas: Record<string, unknown>;
  readonly log?: (event: string, data: Record<string, unknown>) => void;
  /** random source for jitter, injectable for tests */
  readonly random?: () => number;
}

/** Jittered exponential backoff (full jitter between half and the whole step). */
function* backoff(baseMs: number, maxMs: number, random: () => number = Math.random): Generator<number, never> {
  const b = mkBackoff(baseMs, maxMs, random);
  for (;;) yield b.next();
}

export const CONFIG_FILE = 'config.json';
const FEED_REFUSED = "the portal's Download answer was refused: ";

export class Agent extends EventEmitter {
  readonly dir: string;
  readonly device: DeviceFiles;
  readonly settings: AgentSettings;
  private readonly schemas: Map<string, Schema>;
  private readonly secrets: ClaimSecrets;
  private readonly client: PortalClient;
  private readonly log: (event: string, data: Record<string, unknown>) => void;
  private readonly random: () => number;
  private state: AgentState;
  private conn: ConnectionState = 'starting';
  private queue: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private mqtt: import('mqtt').MqttClient | undefined;
  private mqttTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private polling = false;
  private pollAgain = false;
  private portalPub: Uint8Array | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastStatusSentMs = 0;
  /** settled by the first successful poll (or by stop): start() resolves only then */
  private firstPolled: () => void = () => undefined;
  private readonly firstPoll = new Promise<void>((resolve) => {
    this.firstPolled = resolve;
  });

  constructor(opts: AgentOptions) {
    super();
    this.dir = opts.dir;
    this.device = opts.device;
    this.settings = opts.settings;
    this.log = opts.log ?? (() => undefined);
    this.random = opts.random ?? Math.random;
    this.schemas = new Map(Object.entries(opts.schemas).map(([app, s]) => [app, checkSchema(s, `schema ${app}`)]));
    this.secrets = deriveClaimSecrets(opts.device.claimSecret);
    this.state = loadState(opts.dir);
    this.client = new PortalClient({ url: opts.settings.portal, identity: { subject: opts.device.id, key: opts.device.keys.auth } });
  }

  get connection(): ConnectionState {
    return this.conn;
  }

  get currentState(): AgentState {
    return this.state;
  }

  private setConn(c: ConnectionState): void {
    if (this.conn !== c) {
      this.conn = c;
      this.log('connection', { state: c });
      this.emit('connection', c);
    }
  }

  /** Start: register (retrying with backoff), then listen for pushes and poll. Resolves once registered and the first poll has succeeded. */
  async start(): Promise<void> {
    this.setConn('registering');
    const delays = backoff(500, 30_000, this.random);
    for (;;) {
      if (this.stopping) return;
      try {
        await this.register();
        break;
      } catch (e) {
        const d = delays.next().value;
        this.log('register-failed', { code: isMeshError(e) ? e.code : 'unavailable', message: (e as Error).message, retryMs: d });
        this.setConn('offline');
        await sleep(d);
      }
    }
    this.setConn('online');
    await this.pollNow();
    // push after the first poll, and after start() has returned: loading mqtt.js (tens of ms) would
    // otherwise hold up that poll and the start-up; anything that arrives meanwhile is caught by the
    // poll the push connection makes once subscribed
    if (this.settings.push) setImmediate(() => void this.connectPush());
    this.scheduleStatus(0);
    // a failed first poll is retried with backoff; "ready" means the feed has been read once
    await this.firstPoll;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.firstPolled();
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.mqttTimer !== undefined) clearTimeout(this.mqttTimer);
    if (this.statusTimer !== undefined) clearTimeout(this.statusTimer);
    const m = this.mqtt;
    this.mqtt = undefined;
    if (m !== undefined) await m.endAsync(true).catch(() => undefined);
    await this.queue.catch(() => undefined);
    this.client.close();
    this.setConn('stopped');
  }

  private async register(): Promise<void> {
    const hello = await this.client.hello();
    const portal = verifyPortalProfile(hello.portal);
    if (this.state.portalKey !== null && this.state.portalKey !== portal.id) {
      throw new MeshError('wrong-master', `the portal's key changed from ${this.state.portalKey} to ${portal.id}; refusing to trust it`);
    }
    this.portalPub = portal.sign;
    await this.client.register({
      device: this.device.profile,
      endorsement: this.device.endorsement,
      claim: { id: this.secrets.claimId, blob: sealClaimBlob(this.secrets, { profile: this.device.profile, endorsement: this.device.endorsement }), portalKey: b64u(this.secrets.portalKey) },
      request: createSession(this.device.keys.auth, this.device.id),
    });
    this.mqttUrl = hello.mqtt;
    this.commit({ ...this.state, registered: true, portalKey: portal.id, lastContact: new Date().toISOString() });
    this.log('registered', { device: this.device.id, portal: portal.id });
  }

  private mqttUrl: string | null = null;

  // ------------------------------------------------------------ push

  private async connectPush(): Promise<void> {
    if (this.stopping || this.mqttUrl === null) return;
    const delays = backoff(500, 30_000, this.random);
    const { connect } = await import('mqtt');
    let first = true;
    const attempt = async (): Promise<void> => {
      if (this.stopping || this.mqttUrl === null) return;
      // a broker that takes portal-minted passwords (NATS operator mode) gets a fresh one per connection
      if (this.client.pushPassword !== undefined && !first) await this.client.openSession().catch(() => undefined);
      first = false;
      if (this.stopping) return;
      const password = this.client.pushPassword ?? JSON.stringify(createSession(this.device.keys.auth, this.device.id));
      const c = connect(this.mqttUrl, { username: this.device.id, password, reconnectPeriod: 0, connectTimeout: 10_000, clean: true, keepalive: 30, writeCache: false, clientId: `mmm-${this.device.id.slice(0, 24)}-${Math.floor(this.random() * 1e9).toString(36)}` });
      this.mqtt = c;
      let up = false;
      c.on('connect', () => {
        up = true;
        c.subscribe(deviceTopic(this.device.id), { qos: 1 }, (err) => {
          if (err) this.log('push-subscribe-failed', { message: err.message });
          else {
            this.log('push-connected', { url: this.mqttUrl });
            // catch up on anything missed while disconnected
            void this.pollNow();
          }
        });
      });
      c.on('message', (_topic, payload) => this.onPush(payload));
      c.on('error', (e) => this.log('push-error', { message: e.message }));
      c.on('close', () => {
        if (this.stopping || this.mqtt !== c) return;
        c.removeAllListeners();
        c.on('error', () => undefined);
        void c.endAsync(true).catch(() => undefined);
        const d = up ? delays.next().value : delays.next().value;
        this.log('push-disconnected', { retryMs: d });
        this.mqttTimer = setTimeout(() => void attempt(), d);
      });
    };
    await attempt();
  }

  /**
   * A push is a hint, never an instruction: its feed number is not signed, so whoever can publish
   * on the device's topic (a misconfigured or hostile broker) could otherwise move the cursor past
   * a real item (say, the revocation of a stolen key). The agent parses it (so junk is recorded for
   * the owners) and then polls: the cursor only ever moves with the portal's Download answers.
   */
  private onPush(payload: Buffer): void {
    try {
      const item = parseFeedItem(parseJson(payload, 600_000, 'MQTT payload'), 'pushed item');
      if (item.n <= this.state.n) return;
    } catch (e) {
      this.recordError({ code: isMeshError(e) ? e.code : 'malformed', message: `a pushed message was refused: ${(e as Error).message}` });
    }
    void this.pollNow();
  }

  // ------------------------------------------------------------ poll

  private schedulePoll(ms: number): void {
    if (this.stopping) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pollNow(), ms);
  }

  private pollDelays = backoff(1000, 60_000);

  /** Poll now (coalesced); on failure back off with jitter; then schedule the next regular poll. */
  async pollNow(): Promise<void> {
    if (this.stopping) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.pollAgain = false;
        const r = await this.client.download(this.state.n);
        if (this.conn !== 'online') this.setConn('online');
        this.pollDelays = backoff(1000, 60_000, this.random);
        this.firstPolled();
        this.state = { ...this.state, lastContact: new Date().toISOString() };
        // while nothing changes the owners still need fresh signed evidence that the device is in contact
        if (Date.now() - this.lastStatusSentMs > this.settings.maxStaleMs / 4) this.scheduleStatus(0);
        if (r.items.length > 0) {
          await new Promise<void>((resolve, reject) => this.enqueue(() => this.apply(r.items).then(resolve, reject)));
          if (r.n > this.state.n) this.pollAgain = true;
        }
      } while (this.pollAgain && !this.stopping);
      const jitter = 0.9 + this.random() * 0.2;
      this.schedulePoll(Math.round(this.settings.pollIntervalMs * jitter));
    } catch (e) {
      const d = this.pollDelays.next().value;
      this.log('poll-failed', { code: isMeshError(e) ? e.code : 'unavailable', message: (e as Error).message, retryMs: d });
      if (isMeshError(e) && (e.code === 'unavailable' || e.code === 'timeout')) this.setConn('offline');
      if (isMeshError(e) && e.code === 'unauthorized') this.state = { ...this.state, registered: false };
      else if (isMeshError(e) && e.code !== 'unavailable' && e.code !== 'timeout') this.feedRefused(e);
      this.schedulePoll(d);
    } finally {
      this.polling = false;
    }
  }

  /**
   * A Download answer the agent cannot use (malformed, too large, a refusal it does not expect):
   * nothing is applied or skipped and the poll is retried, but the owners must be able to see why
   * the device is not moving, so the reason goes into the state and the signed status; once per
   * code while it lasts, not once per retry.
   */
  private feedRefused(e: MeshError): void {
    const last = this.state.errors[this.state.errors.length - 1];
    if (last !== undefined && last.code === e.code && last.message.startsWith(FEED_REFUSED)) return;
    this.recordError({ code: e.code, message: `${FEED_REFUSED}${e.message}`.slice(0, 1000) });
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((e) => this.log('internal-error', { message: (e as Error).message }));
  }

  // ------------------------------------------------------------ applying items

  /** Apply feed items in order; each is verified, refused items are recorded, the cursor always advances. */
  private async apply(items: readonly FeedItem[]): Promise<void> {
    let changed = false;
    let s = this.state;
    this.pending = [];
    for (const item of [...items].sort((a, b) => a.n - b.n)) {
      if (item.n <= s.n) continue;
      try {
        const r = this.applyItem(s, item);
        s = r.state;
        changed = changed || r.configChanged;
        this.log('accepted', { n: item.n, kind: item.kind });
      } catch (e) {
        const err = e instanceof MeshError ? e : new MeshError('internal', (e as Error).message);
        const ctx = itemContext(item);
        s = withError(s, { code: err.code, message: err.message, at: new Date().toISOString(), ...ctx });
        this.log('refused', { n: item.n, kind: item.kind, code: err.code, message: err.message, ...ctx });
        this.pending.push(['refused', { n: item.n, kind: item.kind, code: err.code, ...ctx }]);
      }
      s = { ...s, n: item.n };
    }
    if (changed) {
      await loadConf();
      this.writeConfig(s);
    }
    this.commit(s);
    // events only once the state and the configuration they describe are on disk
    const events = this.pending;
    this.pending = [];
    for (const [name, data] of events) this.emit(name, data);
    this.scheduleStatus(50);
    if (changed) this.runHook();
  }

  private pending: [string, Record<string, unknown>][] = [];

  private applyItem(s: AgentState, item: FeedItem): { state: AgentState; configChanged: boolean } {
    const now = new Date().toISOString();
    // each kind's parser checks the payload's type itself (`wrong-type`)
    switch (item.kind) {
      case 'claim': {
        if (item.master === undefined) throw new MeshError('malformed', 'a claim arrived without its master profile');
        const claimed = parseClaimPayload(item.object);
        const master = verifyMasterProfile(item.master, claimed.master);
        const known = s.owners[master.id];
        // a stale master profile must not roll an owner back
        const useMaster = known !== undefined && known.masterSeq > master.payload.seq ? verifyMasterProfile(known.masterEnvelope, master.id) : master;
        const claim = verifyClaim(item.object, useMaster, { key: this.secrets.deviceKey, which: 'device' });
        if (claim.device !== this.device.id) throw new MeshError('wrong-device', `the claim is for device ${claim.device}`);
        const owner: Owner = {
          master: master.id,
          account: claim.account,
          masterEnvelope: useMaster.envelope,
          masterSeq: useMaster.payload.seq,
          claimedAt: known?.claimedAt ?? now,
          apps: known?.apps ?? {},
        };
        this.log('claimed', { owner: claim.account, master: master.id });
        this.pending.push(['claimed', { account: claim.account, master: master.id }]);
        return { state: { ...s, owners: { ...s.owners, [master.id]: owner } }, configChanged: false };
      }
      case 'master': {
        const p = parseMasterPayload(payloadBytes(item.object));
        const id = signKeyId(fromB64u(p.sign, 'sign', 32));
        const owner = s.owners[id];
        if (owner === undefined) throw new MeshError('unknown-owner', `a master profile for ${id}, who does not own this device`);
        const master = verifyMasterProfile(item.object, id);
        if (master.payload.seq <= owner.masterSeq) throw new MeshError('rollback', `master profile ${master.payload.seq} is not newer than ${owner.masterSeq}`);
        return { state: { ...s, owners: { ...s.owners, [id]: { ...owner, masterEnvelope: master.envelope, masterSeq: master.payload.seq } } }, configChanged: false };
      }
      case 'application': {
        // find the owner by the signing key first: the payload (which may be large) is then parsed once, when verified
        const owner = this.ownerBySigner(s, item.object) ?? this.ownerNamedIn(s, item.object);
        const master = this.ownerMaster(owner);
        const ap = verifyApplicationProfile(item.object, master);
        if (ap.payload.master !== owner.master) throw new MeshError('wrong-master', `a ${ap.payload.app} profile names ${ap.payload.master}, but is signed by ${owner.account}`);
        const prev = owner.apps[ap.payload.app];
        if (prev !== undefined && ap.payload.seq <= prev.seq) {
          throw new MeshError('rollback', `${ap.payload.app} profile ${ap.payload.seq} from ${owner.account} is not newer than ${prev.seq}, already applied`);
        }
        const doc = openApplicationProfile(ap, { id: this.device.id, enc: this.device.keys.enc });
        const schema = this.schemas.get(ap.payload.app);
        if (schema === undefined) throw new MeshError('schema', `this device does not run the application "${ap.payload.app}"`);
        const problems = validate(schema, doc);
        if (problems.length > 0) throw new MeshError('schema', `refused ${ap.payload.app} settings from ${owner.account}: ${problems.join('; ')}`);
        const values = nextValues(prev?.values, doc, ap.payload.created);
        const next = this.mergeWith(s, owner.master, ap.payload.app, values);
        const nextProblems = validate(schema, next.values as Json);
        if (nextProblems.length > 0) throw new MeshError('schema', `the merged ${ap.payload.app} settings would be invalid: ${nextProblems.join('; ')}`);
        const apps = { ...owner.apps, [ap.payload.app]: { seq: ap.payload.seq, created: ap.payload.created, appliedAt: now, values } };
        this.pending.push(['applied', { account: owner.account, app: ap.payload.app, seq: ap.payload.seq }]);
        return { state: { ...s, owners: { ...s.owners, [owner.master]: { ...owner, apps } } }, configChanged: true };
      }
      case 'remove': {
        const p = parseRemovePayload(item.object);
        const owner = s.owners[p.master];
        if (owner === undefined) throw new MeshError('unknown-owner', `a removal for ${p.master}, who does not own this device`);
        verifyRemove(item.object, this.ownerMaster(owner));
        if (p.device !== this.device.id) throw new MeshError('wrong-device', `the removal is for device ${p.device}`);
        const owners = { ...s.owners };
        delete owners[p.master];
        this.pending.push(['removed', { account: owner.account, master: owner.master }]);
        return { state: { ...s, owners }, configChanged: true };
      }
    }
  }

  /** An owner's master profile, verified once per envelope held (each item re-verified it: a signature check per change). */
  /** The owner one of whose administration keys (current or revoked) signed `env`, if any. */
  private ownerBySigner(s: AgentState, env: FeedItem['object']): Owner | undefined {
    for (const owner of Object.values(s.owners)) {
      const kids = this.ownerKids(owner);
      if (env.sigs.some((x) => kids.has(x.kid))) return owner;
    }
    return undefined;
  }

  /** Slow path, for objects no owner's key signed: say whether the named owner is unknown or the key is. */
  private ownerNamedIn(s: AgentState, env: FeedItem['object']): Owner {
    const p = parseApplicationPayload(payloadBytes(env));
    const owner = s.owners[p.master];
    if (owner === undefined) throw new MeshError('unknown-owner', `configuration from ${p.master}, who does not own this device`);
    return owner;
  }

  private readonly kidCache = new WeakMap<object, Set<string>>();

  private ownerKids(owner: Owner): Set<string> {
    const hit = this.kidCache.get(owner.masterEnvelope);
    if (hit !== undefined) return hit;
    const m = this.ownerMaster(owner).payload;
    const kids = new Set<string>([...m.admins.map((a) => signKeyId(fromB64u(a.sign, 'sign', 32))), ...m.revoked]);
    this.kidCache.set(owner.masterEnvelope, kids);
    return kids;
  }

  private ownerMaster(owner: Owner): MasterProfile {
    const hit = this.verifiedMasters.get(owner.master);
    if (hit !== undefined && hit.envelope === owner.masterEnvelope) return hit.master;
    const master = verifyMasterProfile(owner.masterEnvelope, owner.master);
    this.verifiedMasters.set(owner.master, { envelope: owner.masterEnvelope, master });
    return master;
  }

  private readonly verifiedMasters = new Map<string, { envelope: Owner['masterEnvelope']; master: MasterProfile }>();

  private mergeWith(s: AgentState, master: string, app: string, values: Record<string, import('./merge.js').KeyValue>): Effective {
    const docs = Object.values(s.owners).flatMap((o) => {
      const v = o.master === master ? values : o.apps[app]?.values;
      return v === undefined ? [] : [{ master: o.master, account: o.account, values: v }];
    });
    return merge(docs);
  }

  /** The effective configuration of every application, with who set each value. */
  effective(s: AgentState = this.state): Record<string, Effective> {
    const apps = new Set<string>();
    for (const o of Object.values(s.owners)) for (const a of Object.keys(o.apps)) apps.add(a);
    const out: Record<string, Effective> = {};
    for (const app of [...apps].sort()) {
      out[app] = merge(Object.values(s.owners).flatMap((o) => (o.apps[app] === undefined ? [] : [{ master: o.master, account: o.account, values: o.apps[app].values }])));
    }
    return out;
  }

  /** Write the effective configuration with conf (atomic write), then make the rename durable. */
  private writeConfig(s: AgentState): void {
    const eff = this.effective(s);
    const doc: Record<string, unknown> = {};
    const sources: Record<string, unknown> = {};
    for (const [app, e] of Object.entries(eff)) {
      doc[app] = e.values;
      sources[app] = e.sources;
    }
    doc._sources = sources;
    writeConf(this.dir, doc);
    if (this.settings.localMqtt !== null) void this.publishLocal(doc);
  }

  private async publishLocal(doc: unknown): Promise<void> {
    const lm = this.settings.localMqtt;
    if (lm === null) return;
    try {
      const { connectAsync } = await import('mqtt');
      const c = await connectAsync(lm.url, { reconnectPeriod: 0, connectTimeout: 5000 });
      await c.publishAsync(lm.topic, JSON.stringify(doc), { qos: 1, retain: true });
      await c.endAsync();
    } catch (e) {
      this.recordError({ code: 'unavailable', message: `could not publish the configuration to ${lm.url}: ${(e as Error).message}` });
    }
  }

  private runHook(): void {
    const hook = this.settings.hook;
    if (hook === null) return;
    const child = spawn('/bin/sh', ['-c', hook], { env: { ...process.env, MESH_CONFIG: path.join(this.dir, CONFIG_FILE) }, stdio: 'ignore' });
    child.on('error', (e) => this.recordError({ code: 'internal', message: `the hook failed to start: ${e.message}` }));
    child.on('exit', (code) => {
      if (code !== 0) this.recordError({ code: 'internal', message: `the hook exited with ${code}` });
    });
  }

  private recordError(e: Omit<StatusError, 'at'>): void {
    this.commit(withError(this.state, { ...e, at: new Date().toISOString() }));
    this.scheduleStatus(50);
  }

  private commit(s: AgentState): void {
    this.state = s;
    saveState(this.dir, s);
  }

  // ------------------------------------------------------------ status back to owners

  private scheduleStatus(ms: number): void {
    if (this.stopping) return;
    if (this.statusTimer !== undefined) clearTimeout(this.statusTimer);
    this.statusTimer = setTimeout(() => this.enqueue(() => this.sendStatus()), ms);
  }

  private async sendStatus(): Promise<void> {
    try {
      let treeHead = this.state.treeHead;
      if (this.portalPub !== undefined) {
        try {
          const th = verifyTreeHead(await this.client.treeHead(), this.portalPub);
          treeHead = { size: th.size, root: b64u(th.root) };
        } catch (e) {
          this.log('treehead-failed', { message: (e as Error).message });
        }
      }
      const s = { ...this.state, statusSeq: this.state.statusSeq + 1, treeHead };
      const owners = Object.values(s.owners).map((o) => ({
        master: o.master,
        account: o.account,
        apps: Object.entries(o.apps).map(([app, a]) => ({ app, seq: a.seq, appliedAt: a.appliedAt })),
      }));
      const env = createStatus(this.device.keys.sign, {
        seq: s.statusSeq,
        lastContact: s.lastContact ?? new Date().toISOString(),
        owners,
        errors: s.errors.slice(-8),
        ...(treeHead !== null ? { treeHead } : {}),
      });
      this.commit(s);
      await this.client.status(env);
      this.lastStatusSentMs = Date.now();
      this.emit('status', s.statusSeq);
    } catch (e) {
      this.log('status-failed', { message: (e as Error).message });
      this.scheduleStatus(5000);
    }
  }
}

function itemContext(item: FeedItem): { master?: string; app?: string; seq?: number } {
  try {
    const v = JSON.parse(Buffer.from(item.object.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const out: { master?: string; app?: string; seq?: number } = {};
    if (typeof v.master === 'string') out.master = v.master;
    if (typeof v.app === 'string') out.app = v.app;
    if (typeof v.seq === 'number' && Number.isSafeInteger(v.seq) && v.seq >= 0) out.seq = v.seq;
    return out;
  } catch {
    return {};
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The effective configuration file, written through conf (which writes a temp file, fsyncs it and
 * renames it over config.json); the directory is then fsynced so the rename survives a power cut.
 */
let ConfCtor: typeof import('conf').default | undefined;
export function writeConf(dir: string, doc: Record<string, unknown>): void {
  if (ConfCtor === undefined) throw new MeshError('internal', 'conf not loaded');
  const store = new ConfCtor<Record<string, unknown>>({ cwd: dir, configName: 'config', configFileMode: 0o644, clearInvalidConfig: true });
  store.store = doc;
  fsyncDir(dir);
}

/** conf is loaded once, lazily: start-up does not pay for it on a device that is not yet configured. */
export async function loadConf(): Promise<void> {
  if (ConfCtor === undefined) ConfCtor = (await import('conf')).default;
}

