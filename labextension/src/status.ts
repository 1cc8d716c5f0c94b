/**
 * The sandbox's state (`docker/status`) where the front end can show it: JupyterLab's status bar,
 * or a toolbar indicator in shells without one (Notebook 7). One poll serves every view; it pauses
 * while nothing shows the state or the browser tab is hidden, and refreshes at once when a run or
 * submission starts or ends.
 */
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { sandboxActivity } from './activity.js';
import { describeDockerStatus, SandboxState, uniqueId } from './render.js';
import { requestAPI, SandboxRequestError } from './request.js';
import { DEFAULT_SETTINGS } from './settings.js';
import { IDockerStatus } from './types.js';

export interface IStatusView {
  state: SandboxState;
  text: string;
  title: string;
}

/** The state shared by every view, refreshed by one `Poll`. */
export class SandboxStatusModel {
  readonly changed = new Signal<this, IStatusView>(this);
  private _view: IStatusView = { state: 'unknown', text: 'Sandbox: ?', title: 'Sandbox status not known yet' };
  private _views = new Set<Widget>();
  private _poll: Poll;
  /** How many times `docker/status` was asked (the browser tests read it to see the poll pause). */
  requests = 0;

  /**
   * @param interval between polls, in ms (the `statusPollInterval` setting)
   * @param settings the server connection (tests give their own)
   */
  constructor(
    interval = DEFAULT_SETTINGS.statusPollMs,
    private _settings?: ServerConnection.ISettings
  ) {
    this._poll = new Poll({
      factory: () => this._fetch(),
      frequency: { interval, backoff: false },
      // Nothing to show it on: no request at all. Shown: poll, except in a hidden browser tab.
      standby: () => (this.displayed ? 'when-hidden' : true),
      name: 'jupyter-exec-ext:sandbox-status'
    });
    sandboxActivity.changed.connect(this._onActivity, this);
  }

  /** Stops polling and listening. */
  dispose(): void {
    // Stopped first: lumino's Poll.dispose leaves its pending timer running until it fires.
    void this._poll.stop();
    this._poll.dispose();
    sandboxActivity.changed.disconnect(this._onActivity, this);
  }

  /** Between two polls, in ms. */
  get interval(): number {
    return this._poll.frequency.interval;
  }

  /** A new interval applies at once: the next poll is one new interval from now. */
  set interval(ms: number) {
    if (ms === this.interval) {
      return;
    }
    const frequency = this._poll.frequency;
    this._poll.frequency = { ...frequency, interval: ms, max: Math.max(ms, frequency.max) };
    void this._poll.schedule({ interval: ms });
  }

  private _onActivity(): void {
    void this.refresh();
  }

  get view(): IStatusView {
    return this._view;
  }

  /** Whether a view of the state is on screen now. */
  get displayed(): boolean {
    return [...this._views].some(view => view.isVisible);
  }

  /** Asks for the state now (unless nothing shows it). */
  refresh(): Promise<void> {
    return this.displayed ? this._poll.refresh() : Promise.resolve();
  }

  /** A view to keep up to date; it wakes the poll when it shows and is forgotten when disposed. */
  add(view: Widget): void {
    this._views.add(view);
    view.disposed.connect(() => this._views.delete(view));
  }

  private async _fetch(): Promise<void> {
    this.requests++;
    let view: IStatusView;
    try {
      view = describeDockerStatus(await requestAPI<IDockerStatus>('docker/status', {}, this._settings));
    } catch (error) {
      const reason = error instanceof SandboxRequestError ? error.reason : null;
      view = describeDockerStatus(null, (error as Error).message, reason);
    }
    this._view = view;
    this.changed.emit(view);
  }
}

/**
 * One view of the state: its text in a focusable `role="status"` element (a screen reader says it
 * when it changes, and only then: the text is written only when it differs), with the details as
 * its accessible description and its tooltip.
 */
export class SandboxStatus extends Widget {
  private _text: HTMLElement;
  private _details: HTMLElement;

  constructor(
    private _model: SandboxStatusModel,
    className = 'jp-ExecExt-statusItem'
  ) {
    super();
    this.addClass(className);
    this._text = document.createElement('span');
    this._text.className = 'jp-ExecExt-status';
    this._text.tabIndex = 0;
    this._text.setAttribute('role', 'status');
    this._details = document.createElement('span');
    this._details.className = 'jp-ExecExt-srOnly';
    this._details.id = uniqueId(document, 'jp-ExecExt-statusDetails');
    this._text.setAttribute('aria-describedby', this._details.id);
    this.node.append(this._text, this._details);
    // A toolbar (Notebook 7's, where this sits without a status bar) makes its items -1 for its
    // own arrow-key navigation, which then does not reach this one: keep it a Tab stop.
    new MutationObserver(() => {
      if (this._text.tabIndex !== 0) {
        this._text.tabIndex = 0;
      }
    }).observe(this._text, { attributes: true, attributeFilter: ['tabindex'] });
    this._show(_model.view);
    _model.changed.connect((_, view) => this._show(view), this);
    _model.add(this);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._model.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    void this._model.refresh();
  }

  private _show(view: IStatusView): void {
    if (this._text.textContent !== view.text) {
      this._text.textContent = view.text;
    }
    if (this._details.textContent !== view.title) {
      this._details.textContent = view.title;
    }
    this._text.title = view.title;
    this._text.dataset.state = view.state;
  }
}
