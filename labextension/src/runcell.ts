/**
 * *Run in sandbox* for one cell: the box under the cell, the live run behind it, Stop (the box's
 * button, the palette command, the kernel toolbar's ■), and where focus goes. One run per notebook
 * at a time; a second request while it runs is dropped (and said so after the first second, when
 * it is no longer a double click).
 */
import { Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { PanelLayout, Widget } from '@lumino/widgets';

import { sandboxActivity } from './activity.js';
import { IRunRequest, LiveRun } from './live.js';
import { exerciseId } from './notebook.js';
import { ILiveViewActions, LiveView } from './outputbox.js';

/** How often the elapsed time is redrawn. */
const TICK_MS = 250;
/** A second click within this is a double click: dropped without a word. */
const DOUBLE_CLICK_MS = 1000;

/** The widget under a cell; each run replaces the view inside it. */
export class SandboxOutputBox extends Widget {
  private _view: LiveView | null = null;

  constructor() {
    super();
    this.addClass('jp-ExecExt-cellOutput');
  }

  get view(): LiveView | null {
    return this._view;
  }

  newRun(actions: ILiveViewActions): LiveView {
    this._view = new LiveView(this.node.ownerDocument, actions);
    this.node.replaceChildren(this._view.node);
    return this._view;
  }
}

interface IActive {
  run: LiveRun;
  box: SandboxOutputBox;
  startedAt: number;
}

/**
 * The run command's toolbar button of a notebook (by its item name in the settings schema): the
 * `jp-button` element, whose shadow `<button>` mirrors its ARIA attributes, or a plain button.
 */
function runButtonOf(panel: NotebookPanel): HTMLElement | null {
  return panel.toolbar.node.querySelector(
    '[data-jp-item-name="run-in-sandbox"] jp-button, [data-jp-item-name="run-in-sandbox"] button'
  );
}

export class CellRunner {
  private readonly _boxes = new WeakMap<Cell, SandboxOutputBox>();
  private readonly _active = new Map<string, IActive>();

  /**
   * @param changed called when a notebook's run starts or ends (commands refresh their labels)
   * @param settings server connection (tests and remote set-ups pass their own)
   */
  constructor(
    private readonly _changed: () => void,
    private readonly _settings?: ServerConnection.ISettings
  ) {}

  isRunning(panel: NotebookPanel | null): boolean {
    return !!panel && this._active.has(panel.id);
  }

  /** Stops the notebook's sandbox run, if one is going; whether there was one. */
  stop(panel: NotebookPanel | null): boolean {
    const active = panel ? this._active.get(panel.id) : undefined;
    if (!active || !active.run.running || active.run.plain) {
      return false;
    }
    if (!active.run.cancelRequested) {
      active.run.cancel();
      active.box.view?.stopping();
    }
    return true;
  }

  private _boxOf(cell: Cell): SandboxOutputBox {
    let box = this._boxes.get(cell);
    if (!box || box.isDisposed) {
      box = new SandboxOutputBox();
      // The cell's own layout: the box sits right under the cell and moves with it.
      (cell.layout as PanelLayout).addWidget(box);
      this._boxes.set(cell, box);
    }
    return box;
  }

  /** Runs the notebook's active cell in the sandbox, streaming into the box under it. */
  async run(panel: NotebookPanel): Promise<void> {
    const cell = panel.content.activeCell;
    if (!cell) {
      return;
    }
    const already = this._active.get(panel.id);
    if (already) {
      // Keep the command enabled (focus stays on the button) and drop the duplicate.
      if (Date.now() - already.startedAt > DOUBLE_CLICK_MS) {
        Notification.info('A sandbox run is still going in this notebook: Stop it (or wait) first.', {
          autoClose: 4000
        });
      }
      return;
    }
    if (cell.model.type !== 'code') {
      Notification.warning('Run in sandbox runs code cells; select a code cell.', { autoClose: 4000 });
      return;
    }
    const request: IRunRequest = { code: cell.model.sharedModel.getSource() };
    const exercise = panel.model ? exerciseId(panel.model) : null;
    if (exercise !== null) {
      request.exercise_id = exercise; // the exercise's data files are in the run's directory
    }
    // Where focus was (the toolbar button, the cell): it goes back there if the box took it.
    const trigger = document.activeElement as HTMLElement | null;
    const box = this._boxOf(cell);
    let run: LiveRun;
    const view = box.newRun({
      stop: () => this.stop(panel),
      sendLine: line => void run.sendStdin(line),
      sendEof: () => void run.sendEof()
    });
    // Said once the server counts the run (so the status item, refreshing on it, sees it).
    let said = false;
    const sayStart = (): void => {
      if (!said) {
        said = true;
        sandboxActivity.emit('start');
      }
    };
    run = new LiveRun(
      {
        started: limit => {
          view.started(limit);
          sayStart();
        },
        fallback: reason => {
          view.started(null);
          view.withoutStop();
          view.note(`Output is not streamed: ${reason}; it shows when the run ends.`);
          sayStart();
        },
        output: (stream, data) => view.output(stream, data),
        inputRequest: prompt => {
          const field = view.askInput(prompt);
          field.focus();
          field.scrollIntoView({ block: 'nearest' });
        },
        display: display => view.display(display),
        notice: message => view.note(message)
      },
      this._settings
    );
    const startedAt = Date.now();
    this._active.set(panel.id, { run, box, startedAt });
    // A notebook closed (or a cell deleted) mid-run: nobody can see or stop the run any more.
    const abandon = (): void => run.cancel();
    panel.disposed.connect(abandon);
    cell.disposed.connect(abandon);
    const button = runButtonOf(panel);
    button?.setAttribute('aria-disabled', 'true');
    view.begin();
    const timer = window.setInterval(() => view.tick(Date.now() - startedAt), TICK_MS);
    this._changed();
    try {
      const outcome = await run.start(request);
      view.finish(outcome.result, outcome.streamed, outcome.fallbackReason);
    } catch (error) {
      view.fail((error as Error).message);
    } finally {
      window.clearInterval(timer);
      panel.disposed.disconnect(abandon);
      cell.disposed.disconnect(abandon);
      this._active.delete(panel.id);
      runButtonOf(panel)?.setAttribute('aria-disabled', 'false');
      const focused = document.activeElement;
      // The Stop button and the input field are gone: focus goes back where the run began.
      if (!focused || focused === document.body || !focused.isConnected || box.node.contains(focused)) {
        if (trigger && trigger.isConnected && trigger !== document.body) {
          trigger.focus();
        } else {
          panel.content.node.focus();
        }
      }
      sayStart(); // every 'end' has its 'start', also for a run refused before it started
      sandboxActivity.emit('end');
      this._changed();
    }
  }
}
