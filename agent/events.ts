/**
 * Typed events: what the agent tells the process around it (the CLI prints them, tests wait for
 * them). Emitted only once the state and configuration they describe are on disk.
 */
import type { AgentEvent } from './core.js';
import type { ConnectionState } from './connection.js';

export interface AgentEvents {
  readonly claimed: Extract<AgentEvent, { type: 'claimed' }>;
  readonly applied: Extract<AgentEvent, { type: 'applied' }>;
  readonly removed: Extract<AgentEvent, { type: 'removed' }>;
  readonly refused: Extract<AgentEvent, { type: 'refused' }>;
  /** a change on probation proved itself, or was undone (the configuration before it is back on disk) */
  readonly confirmed: ProbationEnd;
  readonly reverted: ProbationEnd;
  readonly unhealthy: ProbationEnd;
  readonly connection: ConnectionState;
  /** a signed status was accepted by the portal (its sequence number) */
  readonly status: number;
}

export interface ProbationEnd {
  readonly app: string;
  readonly seq: number;
  readonly account: string;
  readonly reason?: string;
}

type Listener<T> = (value: T) => void;

export class Events<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  /** Listen; returns the function that stops listening. */
  on<K extends keyof E>(name: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) this.listeners.set(name, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => void set.delete(fn as Listener<never>);
  }

  emit<K extends keyof E>(name: K, value: E[K]): void {
    for (const fn of this.listeners.get(name) ?? []) (fn as Listener<E[K]>)(value);
  }
}
