/**
 * The device agent: the shells around the pure core (agent/core.ts).
 *
 * - the connection (agent/connection.ts): registration, registering again when the portal has
 *   lost the device, and the MQTT push channel;
 * - the feed (here): push hints and timed polls coalesce into one poll loop, the only code that
 *   applies feed items; each Download answer goes through the core and is committed in one step;
 * - the status (agent/status.ts): the signed status, on change and as a heartbeat;
 * - the outputs (agent/outputs.ts): config.json, the hook, the local MQTT topic.
 *
 * All state goes through one writer (agent/store.ts); time, timers and jitter come from one clock.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { deriveClaimSecrets, type ClaimSecrets } from '../mesh/claim.js';
import { parseFeedItem } from '../mesh/protocol.js';
import { parseJson } from '../mesh/json.js';
import { canonicalJson, checkSchema, type Schema } from '../mesh/schema.js';
import { type StatusError } from '../mesh/messages.js';
import { PortalClient } from '../client/portal-client.js';
import type { AgentSettings, DeviceFiles } from '../runtime/device-files.js';
import { backoff } from '../runtime/backoff.js';
import { isoNow, sleep, systemClock, type Clock, type Timer } from '../runtime/clock.js';
import { applyLogged, type LateItem } from './logged.js';
import type { DownloadResponse } from '../mesh/protocol.js';
import { configDocument, confirmPending, effective, MasterMemo, revertPending, type AgentEvent, type CoreContext } from './core.js';
import { register, Push, type ConnectionState, type Log, type PortalLink } from './connection.js';
import { sendStatus } from './status.js';
import { CONFIG_FILE, confLoaded, loadConf, publishLocal, runHealth, runHook, writeConf } from './outputs.js';
import { StateStore } from './store.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startDial, type Dial } from './dial.js';
import { answer, applyLocal, inboxDir, newEpoch, pendingCommands, removePid, writePid } from './local.js';
import { withError, type AgentState } from './state.js';
import { Events, type AgentEvents } from './events.js';
import type { Effective } from './merge.js';

export { CONFIG_FILE, loadConf, writeConf };
export type { ConnectionState };

export interface AgentOptions {
  readonly dir: string;
  readonly device: DeviceFiles;
  readonly settings: AgentSettings;
  readonly schemas: Record<string, unknown>;
  readonly log?: Log;
  /** time, timers and randomness (tests pass a FakeClock) */
  readonly clock?: Clock;
}

const FEED_REFUSED = "the portal's Download answer was refused: ";
/** how often the inbox of local commands is read besides inotify's word */
const INBOX_CHECK_MS = 2000;
/** Download answers followed back to back before the loop yields to the regular schedule */
const MAX_CATCH_UP = 64;
/** an item whose proof is late (the portal's head does not hold it yet) is asked for again this soon */
const LATE_RETRY_MS = 1000;

/** The state after a move: the new portal (its key pinned), its feed and log read from the start; owners, configuration, floors, nonces and epoch kept. */
function movedState(s: AgentState, m: { readonly portal: string; readonly portalId: string }): AgentState {
  return { ...s, move: null, moves: {}, portalUrl: m.portal, portalKey: m.portalId, registered: false, n: 0, treeHead: null };
}

export class Agent {
  readonly dir: string;
  readonly device: DeviceFiles;
  readonly settings: AgentSettings;
  readonly events = new Events<AgentEvents>();
  private readonly schemas: ReadonlyMap<string, Schema>;
  private readonly secrets: ClaimSecrets;
  private client: PortalClient;
  private readonly log: Log;
  private readonly clock: Clock;
  private readonly store: StateStore;
  private readonly masters = new MasterMemo();
  private readonly abort = new AbortController();
  private conn: ConnectionState = { kind: 'starting' };
  private link: PortalLink | undefined;
  private push: Push | undefined;
  /** one registration at a time; set while (re-)registering */
  private registering: Promise<PortalLink> | undefined;
  private pollTimer: Timer | undefined;
  private statusTimer: Timer | undefined;
  private polling = false;
  /** the first item the portal has not yet proven logged, since when (this device's clock) */
  private late: LateItem | undefined;
  private pollAgain = false;
  private probing = false;
  /** the hook run for the latest change (a change on probation waits for it) */
  private hookRun: Promise<void> = Promise.resolve();
  private readonly pollDelays: ReturnType<typeof backoff>;
  private statusSending = false;
  private lastStatusSentMs = 0;
  private firstPolled: () => void = () => undefined;
  private readonly firstPoll = new Promise<void>((resolve) => {
    this.firstPolled = resolve;
  });

  constructor(opts: AgentOptions) {
    this.dir = opts.dir;
    this.device = opts.device;
    this.settings = opts.settings;
    this.log = opts.log ?? (() => undefined);
    this.clock = opts.clock ?? systemClock;
    this.schemas = new Map(Object.entries(opts.schemas).map(([app, s]) => [app, checkSchema(s, `schema ${app}`)]));
    this.secrets = deriveClaimSecrets(opts.device.claimSecret);
    this.store = new StateStore(opts.dir);
    // after a move (every owner asked for another portal) the device talks to that one
    this.client = new PortalClient({ url: this.store.state.portalUrl ?? opts.settings.portal, identity: { subject: opts.device.id, key: opts.device.keys.auth } });
    this.pollDelays = backoff(1000, 60_000, () => this.clock.random());
    // a device's first ownership epoch begins the first time its agent runs
    if (this.store.state.epoch === '') this.store.update((s) => ({ ...s, epoch: newEpoch() }));
    // a move given on the device while no agent ran (mesh-agent move): taken now, before registering
    const pending = this.store.state.move;
    if (pending !== null && pending !== undefined) {
      this.store.update((s) => movedState(s, pending));
      this.client.close();
      this.client = new PortalClient({ url: pending.portal, identity: { subject: opts.device.id, key: opts.device.keys.auth } });
    }
  }

  /** Listen to a typed event; returns the function that stops listening. */
  on<K extends keyof AgentEvents>(name: K, fn: (v: AgentEvents[K]) => void): () => void {
    return this.events.on(name, fn);
  }

  get connection(): ConnectionState {
    return this.conn;
  }

  get currentState(): AgentState {
    return this.store.state;
  }

  /** The effective configuration of every application, with who set each value. */
  effective(): Record<string, Effective> {
    return effective(this.store.state);
  }

  private setConn(c: ConnectionState): void {
    if (this.conn.kind === c.kind && c.kind !== 'offline') return;
    this.conn = c;
    this.log('connection', { state: c.kind, ...(c.kind === 'offline' ? { code: c.code, retryMs: c.retryMs } : {}) });
    this.events.emit('connection', c);
  }

  /** Register (retrying with backoff), poll, then listen for pushes. Resolves once the feed has been read once (or on stop). */
  async start(): Promise<void> {
    writePid(this.dir);
    this.watchInbox();
    // the device's own dial on its local broker, when agent.json enables it
    void startDial(this.dir, this.settings, this.log, this.clock).then(
      (d) => (this.stopped ? void d?.stop() : (this.dial = d)),
      (e: unknown) => this.log('dial-error', { message: (e as Error).message }),
    );
    // a change still on probation after a restart (a power cut): it must still prove itself, in its window
    if (this.store.state.pending !== null && this.store.state.pending !== undefined) void loadConf().then(() => this.resumeProbation());
    try {
      await this.ensureRegistered();
    } catch (e) {
      if (this.abort.signal.aborted) return;
      throw e;
    }
    void this.pollNow();
    this.scheduleStatus(0);
    await this.firstPoll;
    // push once the feed has been read: loading mqtt.js (tens of ms) would otherwise hold up that first
    // poll; anything that arrives meanwhile is caught by the poll the push channel makes once subscribed
    const mqtt = this.link?.mqtt ?? null;
    if (!this.stopped && this.settings.push && mqtt !== null) this.startPush(mqtt);
  }

  async stop(): Promise<void> {
    this.abort.abort(new MeshError('unavailable', 'the agent is stopping'));
    this.firstPolled();
    this.pollTimer?.cancel();
    this.statusTimer?.cancel();
    this.inboxWatcher?.close();
    this.inboxTimer?.cancel();
    await this.dial?.stop();
    await this.push?.stop();
    this.client.close();
    removePid(this.dir);
    this.setConn({ kind: 'stopped' });
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Register unless registered in this run; one registration at a time, shared by whoever needs it. */
  private ensureRegistered(): Promise<PortalLink> {
    if (this.link !== undefined) return Promise.resolve(this.link);
    this.registering ??= register({
      client: this.client,
      device: this.device,
      secrets: this.secrets,
      schemas: this.schemas,
      store: this.store,
      // the image's pin is the factory's portal; after a move the device pins the portal its owners named
      portalKey: this.store.state.portalUrl !== undefined ? null : (this.settings.portalKey ?? null),
      clock: this.clock,
      log: this.log,
      signal: this.abort.signal,
      onState: (c) => this.setConn(c),
    }).then(
      (link) => {
        this.link = link;
        this.registering = undefined;
        this.setConn({ kind: 'online' });
        return link;
      },
      (e: unknown) => {
        this.registering = undefined;
        throw e;
      },
    );
    return this.registering;
  }

  /** The portal no longer knows this device (it lost its record, or was restored from a backup): register again. */
  private lostRegistration(code: string): void {
    this.log('registration-lost', { code });
    this.link = undefined;
    this.store.update((s) => (s.registered ? { ...s, registered: false } : s));
    void this.ensureRegistered().then(
      () => this.pollNow(),
      () => undefined,
    );
  }

  /**
   * The MQTT password for each push connection: the one the portal minted (a broker in NATS operator
   * mode checks it), refreshed with a new session before each reconnection since the last may have
   * expired; else a signed session request with a fresh challenge from the portal (what the
   * embedded broker checks: fresh by the portal's clock, whatever the board's clock says).
   */
  private pushPassword(): () => Promise<string> {
    let first = true;
    return async () => {
      if (this.client.pushPassword !== undefined && !first) await this.client.openSession().catch(() => undefined);
      first = false;
      return this.client.pushPassword ?? JSON.stringify(await this.client.sessionRequest(this.device.keys.auth, this.device.id));
    };
  }

  private startPush(url: string): void {
    const push = new Push({ url, device: this.device, clock: this.clock, log: this.log, onHint: (p) => this.onPush(p), onUp: () => void this.pollNow(), password: this.pushPassword() });
    this.push = push;
    this.clock.setTimer(() => {
      if (this.stopped) return;
      push.start().catch((e: unknown) => {
        // a URL the device cannot speak (ws://): said once, to the log and to the owners; polling goes on
        const code = isMeshError(e) ? e.code : 'internal';
        this.log('push-error', { code, message: (e as Error).message });
        if (code === 'usage') this.recordError({ code: 'usage', message: `no push channel: ${(e as Error).message}` });
      });
    }, 0);
  }

  /**
   * A push is a hint, never an instruction: its feed number is not signed, so whoever can publish
   * on the device's topic (a misconfigured or hostile broker) could otherwise move the cursor past
   * a real item. The agent parses it (so junk is recorded for the owners) and then polls.
   */
  private onPush(payload: Buffer): void {
    try {
      const item = parseFeedItem(parseJson(payload, 600_000, 'MQTT payload'), 'pushed item');
      if (item.n <= this.store.state.n) return;
    } catch (e) {
      this.recordError({ code: isMeshError(e) ? e.code : 'malformed', message: `a pushed message was refused: ${(e as Error).message}` });
    }
    void this.pollNow();
  }

  // ------------------------------------------------------------ the feed

  private schedulePoll(ms: number): void {
    if (this.stopped) return;
    this.pollTimer?.cancel();
    this.pollTimer = this.clock.setTimer(() => void this.pollNow(), ms);
  }

  /** Poll now (coalesced with any poll under way); on failure back off with jitter; then schedule the next regular poll. */
  async pollNow(): Promise<void> {
    if (this.stopped || this.link === undefined) return;
    this.runInbox();
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    let heldBack: 'late' | 'not-logged' | 'moved' | 'switched' | undefined;
    try {
      let rounds = 0;
      do {
        this.pollAgain = false;
        const since = this.store.state.n;
        const heldHead = this.store.state.treeHead;
        const r = await this.client.download(since, 0, heldHead?.size ?? 0);
        if (this.stopped) return;
        // the status's refresh took a newer head meanwhile: the answer's proofs are from the older one; ask again
        if (this.store.state.treeHead !== heldHead && r.items.length > 0) {
          this.pollAgain = true;
          continue;
        }
        this.setConn({ kind: 'online' });
        this.pollDelays.reset();
        this.firstPolled();
        this.store.touch((s) => ({ ...s, lastContact: isoNow(this.clock) }));
        // while nothing changes the owners still need fresh signed evidence that the device is in contact
        if (this.clock.now() - this.lastStatusSentMs > this.settings.maxStaleMs / 4) this.scheduleStatus(0);
        if (r.n < since) {
          // the portal's feed is behind the cursor: it lost this device's items or was restored from a
          // backup. Read it again from the start; every object is checked for replay on its own.
          this.log('feed-behind', { cursor: since, portal: r.n });
          this.store.update((s) => ({ ...s, n: 0 }));
          this.pollAgain = true;
        } else if (r.items.length > 0) {
          const held = await this.applyAnswer(r, heldHead);
          if (held === 'switched') return;
          if (held === 'moved') {
            this.pollAgain = true;
            continue;
          }
          // what the portal has not proven logged is asked for again: soon if merely late, at the next poll if refused
          if (held !== undefined) {
            heldBack = held;
            break;
          }
          if (r.n > this.store.state.n) this.pollAgain = true;
        }
      } while (this.pollAgain && !this.stopped && ++rounds < MAX_CATCH_UP);
      const jitter = 0.9 + this.clock.random() * 0.2;
      const next = heldBack === 'late' ? Math.min(LATE_RETRY_MS, this.settings.pollIntervalMs) : this.pollAgain ? 0 : this.settings.pollIntervalMs;
      this.schedulePoll(Math.round(next * jitter));
    } catch (e) {
      this.pollFailed(e);
    } finally {
      this.polling = false;
    }
  }

  private pollFailed(e: unknown): void {
    const code = isMeshError(e) ? e.code : 'unavailable';
    const retryMs = this.pollDelays.next();
    this.log('poll-failed', { code, message: (e as Error).message, retryMs });
    switch (code) {
      case 'unavailable':
      case 'timeout':
        this.setConn({ kind: 'offline', code, retryMs });
        break;
      case 'not-found':
      case 'unauthorized':
        this.lostRegistration(code);
        return;
      default:
        this.feedRefused(e as MeshError);
    }
    this.schedulePoll(retryMs);
  }

  /**
   * A Download answer the agent cannot use (malformed, too large, a refusal it does not expect):
   * nothing is applied or skipped and the poll is retried, but the owners must see why the device
   * is not moving, so the reason goes into the signed status; once per code while it lasts.
   */
  private feedRefused(e: MeshError): void {
    const last = this.store.state.errors.at(-1);
    if (last !== undefined && last.code === e.code && last.message.startsWith(FEED_REFUSED)) return;
    this.recordError({ code: e.code, message: `${FEED_REFUSED}${e.message}`.slice(0, 1000) });
  }

  /**
   * One answer through the log check and the core (agent/logged.ts), then config, state and
   * events, in that order, with no await between them. Returns why items were held back, if any
   * ('moved': the held head changed since the request, so its proofs do not apply: ask again).
   */
  private async applyAnswer(answer: DownloadResponse, heldHead: AgentState['treeHead']): Promise<'late' | 'not-logged' | 'moved' | 'switched' | undefined> {
    await loadConf();
    if (this.stopped || this.link === undefined) return undefined;
    const before = this.store.state;
    // the status's refresh took a newer head meanwhile: the answer's proofs are from the older one
    if (before.treeHead !== heldHead) return 'moved';
    const r = applyLogged(before, answer, this.context(), this.link.logKey, this.late, this.clock.now());
    if (r.hold?.code === 'late') {
      if (this.late?.n !== r.hold.n) this.late = { n: r.hold.n, sinceMs: this.clock.now() };
      this.log('log-late', { n: r.hold.n, message: r.hold.message });
    } else this.late = undefined;
    const held = r.hold?.code ?? (r.events.some((e) => e.type === 'refused' && e.n > r.state.n) ? 'not-logged' : undefined);
    // nothing applied (a change on probation holds the feed): nothing to write
    if (r.state === before && r.gap === undefined) return held;
    let state = r.state;
    if (r.gap !== undefined) {
      const message = `${FEED_REFUSED}item ${r.gap.got} came where ${r.gap.expected} was expected; nothing from it on was applied`;
      this.log('feed-gap', { expected: r.gap.expected, got: r.gap.got });
      const last = state.errors.at(-1);
      if (last?.code !== 'feed-gap') state = withError(state, { code: 'feed-gap', message, at: isoNow(this.clock) });
    }
    const doc = r.configChanged ? configDocument(state) : undefined;
    // the configuration first: a crash before the state is written re-reads the same items and writes the same file
    if (doc !== undefined) writeConf(this.dir, doc);
    this.store.update(() => state);
    for (const ev of r.events) this.emitCore(ev);
    this.scheduleStatus(50);
    if (doc !== undefined) {
      if (this.settings.localMqtt !== null) void publishLocal(this.settings, doc, (f) => this.recordError(f), this.clock);
      this.hookRun = runHook(this.dir, this.settings, (f) => this.recordError(f));
    }
    if (state.pending !== null && state.pending !== undefined) void this.probation();
    if (state.move !== null && state.move !== undefined) {
      this.switchPortal(state.move);
      return 'switched';
    }
    return held;
  }

  /**
   * Every owner asked the device to move to another portal: talk to that one from now on (pinning
   * its key), register there and read its feed from the start; owners, configuration, rollback
   * state and epoch stay. The old portal's log is left behind with its head.
   */
  private switchPortal(m: { readonly portal: string; readonly portalId: string }): void {
    this.log('moved', { portal: m.portal, portalId: m.portalId });
    this.store.update((s) => movedState(s, m));
    const push = this.push;
    this.push = undefined;
    void push?.stop();
    this.client.close();
    this.client = new PortalClient({ url: m.portal, identity: { subject: this.device.id, key: this.device.keys.auth } });
    this.link = undefined;
    this.late = undefined;
    void this.ensureRegistered().then(
      (link) => {
        void this.pollNow();
        this.scheduleStatus(0);
        if (!this.stopped && this.settings.push && link.mqtt !== null) this.startPush(link.mqtt);
      },
      () => undefined,
    );
  }

  // ------------------------------------------------------------ a change on probation

  /**
   * A change its owner asked to be confirmed: once the hook has run with it in effect, the health
   * check must pass and the device must complete a round trip with the portal before the deadline
   * (this device's clock); then it is confirmed. Otherwise the device goes back to the owner's
   * configuration before it, runs the hook again, and reports `reverted` or `unhealthy`. The
   * probation is in state.json, so a restart (a power cut) resumes it: the change ends confirmed
   * or reverted, never in between. Nothing later in the feed is applied meanwhile.
   */
  private async probation(): Promise<void> {
    if (this.probing || this.stopped) return;
    const p = this.store.state.pending;
    if (p === null || p === undefined) return;
    this.probing = true;
    try {
      await this.hookRun;
      const health = await runHealth(this.dir, this.settings);
      if (this.stopped) return;
      if (!health.ok) return this.revert('unhealthy', health.reason);
      for (;;) {
        const cur = this.store.state.pending;
        if (cur === null || cur === undefined || cur.n !== p.n || this.stopped) return;
        if (cur.contact === false) {
          // no confirmation asked for: the health check was all there was to pass
          this.store.update((st) => confirmPending(st));
          this.events.emit('confirmed', { app: p.app, seq: p.seq, account: p.account });
          this.scheduleStatus(0);
          void this.pollNow();
          return;
        }
        const now = this.clock.now();
        if (now > cur.deadlineMs || now < cur.sinceMs) return this.revert('reverted', `no portal contact within ${Math.round((cur.deadlineMs - cur.sinceMs) / 1000)} s of applying it`);
        try {
          await sendStatus({ client: this.client, device: this.device, store: this.store, clock: this.clock, log: this.log, logKey: this.link?.logKey });
          if (this.store.state.pending?.n !== p.n) return;
          this.store.update((st) => confirmPending(st));
          this.log('confirmed', { app: p.app, seq: p.seq, account: p.account });
          this.events.emit('confirmed', { app: p.app, seq: p.seq, account: p.account });
          this.scheduleStatus(0);
          void this.pollNow();
          return;
        } catch (e) {
          this.log('probation-contact-failed', { app: p.app, seq: p.seq, message: (e as Error).message });
          await sleep(this.clock, Math.max(50, Math.min(1000, cur.deadlineMs - this.clock.now() + 1)), this.abort.signal).catch(() => undefined);
        }
      }
    } finally {
      this.probing = false;
    }
  }

  /**
   * After a restart with a change on probation: the state says the change is in effect, but a power
   * cut inside a revert may have left the configuration before it in config.json (the revert
   * writes the file first, then the state). The change is put back on disk (and through the hook)
   * before it is checked again, so it is never confirmed on a file that does not hold it.
   */
  private resumeProbation(): void {
    const doc = configDocument(this.store.state);
    let onDisk: unknown;
    try {
      onDisk = JSON.parse(fs.readFileSync(path.join(this.dir, CONFIG_FILE), 'utf8')) as unknown;
    } catch {
      onDisk = undefined;
    }
    if (canonicalJson(onDisk) !== canonicalJson(doc)) {
      this.log('probation-restored', { app: this.store.state.pending?.app, seq: this.store.state.pending?.seq });
      writeConf(this.dir, doc);
      if (this.settings.localMqtt !== null) void publishLocal(this.settings, doc, (f) => this.recordError(f), this.clock);
      this.hookRun = runHook(this.dir, this.settings, (f) => this.recordError(f));
    }
    void this.probation();
  }

  /** Undo the change on probation: the previous configuration written first, then the state; the hook runs again. */
  private revert(code: 'reverted' | 'unhealthy', reason: string): void {
    const p = this.store.state.pending;
    if (p === null || p === undefined) return;
    const next = revertPending(this.store.state, { code, reason }, isoNow(this.clock));
    const doc = configDocument(next);
    writeConf(this.dir, doc);
    this.store.update(() => next);
    this.log(code, { app: p.app, seq: p.seq, account: p.account, reason });
    this.events.emit(code, { app: p.app, seq: p.seq, account: p.account, reason });
    if (this.settings.localMqtt !== null) void publishLocal(this.settings, doc, (f) => this.recordError(f), this.clock);
    this.hookRun = runHook(this.dir, this.settings, (f) => this.recordError(f));
    this.scheduleStatus(0);
    void this.hookRun.then(() => this.pollNow());
  }

  private context(): CoreContext {
    return {
      device: { id: this.device.id, enc: this.device.keys.enc, claimKey: this.secrets.deviceKey },
      schemas: this.schemas,
      now: isoNow(this.clock),
      masters: this.masters,
      claimWindowOpen: this.store.state.claimWindowUntil > this.clock.now(),
      health: this.settings.health !== null,
    };
  }

  // ------------------------------------------------------------ local commands (someone holding the device)

  private inboxWatcher: fs.FSWatcher | undefined;

  /** Apply the commands waiting in DIR/inbox/ now, and whenever a new one is dropped there. */
  private watchInbox(): void {
    fs.mkdirSync(inboxDir(this.dir), { recursive: true, mode: 0o700 });
    this.runInbox();
    try {
      this.inboxWatcher = fs.watch(inboxDir(this.dir), () => this.runInbox());
      this.inboxWatcher.unref();
      this.inboxWatcher.on('error', () => undefined);
    } catch {
      // no inotify (or out of watches): the timer below still reads the inbox
    }
    // whatever inotify does, someone at the device is answered within a couple of seconds
    const tick = (): void => {
      if (this.stopped) return;
      this.runInbox();
      this.inboxTimer = this.clock.setTimer(tick, INBOX_CHECK_MS, { unref: true });
    };
    this.inboxTimer = this.clock.setTimer(tick, INBOX_CHECK_MS, { unref: true });
  }

  private inboxTimer: Timer | undefined;
  private dial: Dial | undefined;

  private runInbox(): void {
    if (this.stopped) return;
    const pending = pendingCommands(this.dir);
    if (pending.length > 0 && !confLoaded()) {
      void loadConf().then(() => this.runInbox());
      return;
    }
    for (const { id, command } of pending) {
      if (command instanceof MeshError) {
        answer(this.dir, id, { ok: false, code: command.code, message: command.message });
        continue;
      }
      try {
        const r = applyLocal(this.store.state, command, { claimKey: this.secrets.deviceKey, nowMs: this.clock.now(), epoch: newEpoch(), schemas: this.schemas });
        if (r.configChanged) writeConf(this.dir, configDocument(r.state));
        this.store.update(() => r.state);
        this.log('local', { cmd: command.cmd, message: r.message });
        answer(this.dir, id, { ok: true, message: r.message });
        this.scheduleStatus(0);
        if (r.configChanged) {
          if (this.settings.localMqtt !== null) void publishLocal(this.settings, configDocument(r.state), (f) => this.recordError(f), this.clock);
          this.hookRun = runHook(this.dir, this.settings, (f) => this.recordError(f));
        }
        // a new epoch: the label record at the portal names it, so claimants can bind their claims to it
        if (command.cmd === 'reset') this.lostRegistration('reset');
        if (r.state.move !== null && r.state.move !== undefined) this.switchPortal(r.state.move);
      } catch (e) {
        const code = isMeshError(e) ? e.code : 'internal';
        answer(this.dir, id, { ok: false, code, message: (e as Error).message });
      }
    }
  }

  private emitCore(ev: AgentEvent): void {
    if (ev.type === 'refused') this.log('refused', { ...ev });
    else this.log(ev.type, { ...ev });
    switch (ev.type) {
      case 'claimed':
        return this.events.emit('claimed', ev);
      case 'applied':
        return this.events.emit('applied', ev);
      case 'removed':
        return this.events.emit('removed', ev);
      case 'refused':
        return this.events.emit('refused', ev);
    }
  }

  private recordError(e: Omit<StatusError, 'at'>): void {
    this.store.update((s) => withError(s, { ...e, at: isoNow(this.clock) }));
    this.scheduleStatus(50);
  }

  // ------------------------------------------------------------ status back to owners

  private scheduleStatus(ms: number): void {
    if (this.stopped) return;
    this.statusTimer?.cancel();
    this.statusTimer = this.clock.setTimer(() => void this.statusNow(), ms);
  }

  private async statusNow(): Promise<void> {
    if (this.stopped) return;
    if (this.statusSending || this.link === undefined) {
      this.scheduleStatus(200);
      return;
    }
    this.statusSending = true;
    try {
      const seq = await sendStatus({ client: this.client, device: this.device, store: this.store, clock: this.clock, log: this.log, logKey: this.link.logKey });
      this.lastStatusSentMs = this.clock.now();
      this.events.emit('status', seq);
    } catch (e) {
      this.log('status-failed', { message: (e as Error).message });
      this.scheduleStatus(5000);
    } finally {
      this.statusSending = false;
    }
  }
}

