/**
 * The one writer of the agent's state. Every change is a function of the current state, applied
 * and written in the same synchronous step (read, change, write atomically), so no change can be
 * lost to another made while a request was in flight: a caller that awaited something describes
 * its change as `update(s => ...)` on the state as it is then, never commits a snapshot it took
 * before the await.
 *
 * `touch` changes what is held in memory only (the time of the last contact, which changes with
 * every poll): writing the SD card twice a minute for it would wear the card out, and the next
 * durable change carries it to disk.
 */
import { loadState, saveState, type AgentState } from './state.js';

export class StateStore {
  private s: AgentState;

  constructor(private readonly dir: string) {
    this.s = loadState(dir);
  }

  get state(): AgentState {
    return this.s;
  }

  /** Change the state and write it to disk atomically before returning the new state. */
  update(change: (s: AgentState) => AgentState): AgentState {
    const next = change(this.s);
    if (next !== this.s) {
      saveState(this.dir, next);
      this.s = next;
    }
    return next;
  }

  /** Change the state in memory only (volatile fields); written with the next `update`. */
  touch(change: (s: AgentState) => AgentState): AgentState {
    this.s = change(this.s);
    return this.s;
  }
}
