/**
 * One signal for "a sandbox run or submission started or ended", so that whatever shows the
 * sandbox's state (the status bar item, Notebook 7's toolbar indicator) updates at once instead of
 * waiting for its next poll.
 */
import { Signal } from '@lumino/signaling';

export type SandboxActivity = 'start' | 'end';

class ActivitySource {
  private _signal = new Signal<this, SandboxActivity>(this);
  get changed(): Signal<this, SandboxActivity> {
    return this._signal;
  }
  emit(what: SandboxActivity): void {
    this._signal.emit(what);
  }
}

export const sandboxActivity = new ActivitySource();
