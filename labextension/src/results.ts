/**
 * *Submit* and the *Results* panel. The panel opens beside the notebook where the shell can split
 * its main area (JupyterLab), else in the right side panel, else in a box above the notebook
 * (Notebook 7's shell holds one main widget and ignores a split): each is tried and kept only if
 * the panel really attached. Every submission reveals the panel and a polite live region says one
 * short summary; focus stays where the student had it.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { sandboxActivity } from './activity.js';
import { collectSubmission, describeCell, exerciseId } from './notebook.js';
import { addHistoryCommand, showHistory } from './history.js';
import { renderError, renderPending, renderSubmission, submissionSummary } from './render.js';
import { requestAPI } from './request.js';
import { ISubmissionResult } from './types.js';

export const SUBMIT_COMMAND = 'jupyter-exec-ext:submit';
export const SHOW_RESULTS_COMMAND = 'jupyter-exec-ext:show-results';
/** A submission this soon after the last one asks first (a double click, a second thought). */
export const REPEAT_WINDOW_MS = 5_000;

/** Where the panel went: a split of the main area, the right side panel, or above the notebook. */
export type Placement = 'split' | 'side' | 'inline';

/**
 * The panel's content: a region labelled by its heading, focusable (it scrolls), with a polite
 * live region for the one-sentence summary and `aria-busy` while grading.
 */
export class ResultsBox extends Widget {
  readonly body: HTMLElement;
  readonly live: HTMLElement;

  constructor() {
    super();
    this.addClass('jp-ExecExt-resultsPanel');
    this.node.setAttribute('role', 'region');
    this.node.tabIndex = 0;
    this.live = document.createElement('div');
    this.live.className = 'jp-ExecExt-srOnly jp-ExecExt-live';
    this.live.setAttribute('role', 'status');
    this.live.setAttribute('aria-live', 'polite');
    this.body = document.createElement('div');
    this.body.className = 'jp-ExecExt-resultsBody';
    this.node.append(this.live, this.body);
  }

  /** Shows `content`; `summary` (when done) is announced, `pending` marks the region busy. */
  setContent(content: HTMLElement, pending: boolean, summary?: string): void {
    this.body.replaceChildren(content);
    const heading = content.querySelector('.jp-ExecExt-title');
    if (heading) {
      this.node.setAttribute('aria-labelledby', heading.id);
    }
    this.node.setAttribute('aria-busy', pending ? 'true' : 'false');
    this.body.setAttribute('aria-busy', pending ? 'true' : 'false');
    if (summary !== undefined) {
      // Cleared first, so the same sentence twice in a row is said twice.
      this.live.textContent = '';
      window.setTimeout(() => {
        this.live.textContent = summary;
      }, 100);
    }
  }

  /** Moves focus to the results' heading (the *Show results* command). */
  focusHeading(): void {
    const heading = this.body.querySelector<HTMLElement>('.jp-ExecExt-title');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    } else {
      this.node.focus();
    }
  }
}

interface ISubmitOptions {
  instructor: () => boolean;
  /** Whether the toolbar shows the Submit button (the `showSubmit` setting). */
  showButton: () => boolean;
  /** The cells a submission graded (models' ids), for their marks. */
  onGraded: (panel: NotebookPanel, cellIds: Set<string>) => void;
  refreshCommands: () => void;
}

/**
 * The toolbar buttons of the item `name` in `panel`: `jp-button` elements, which pass their ARIA
 * attributes on to the `<button>` in their shadow root.
 */
function toolbarButtons(panel: NotebookPanel, name: string): HTMLElement[] {
  return [
    ...panel.toolbar.node.querySelectorAll<HTMLElement>(`[data-jp-item-name="${name}"] .jp-ToolbarButtonComponent`)
  ];
}

export function registerSubmit(app: JupyterFrontEnd, tracker: INotebookTracker, options: ISubmitOptions): void {
  const { commands, shell } = app;
  const panels = new Map<string, { widget: MainAreaWidget<ResultsBox>; placement: Placement }>();
  const inFlight = new Set<string>();
  const lastSubmitted = new Map<string, number>();
  const current = (): NotebookPanel | null => tracker.currentWidget;

  /** Puts the panel somewhere it shows; returns where, checking each time that it attached. */
  const place = (panel: NotebookPanel, widget: MainAreaWidget<ResultsBox>): Placement => {
    try {
      // Not activated: activating it would take the keyboard focus from the notebook.
      shell.add(widget, 'main', { mode: 'split-right', ref: panel.id, activate: false } as any);
    } catch {
      // a shell that refuses the option outright: try the next place
    }
    if (widget.isAttached) {
      return 'split';
    }
    try {
      shell.add(widget, 'right', { rank: 1000 });
    } catch {
      // no right area in this shell
    }
    if (widget.isAttached) {
      return 'side';
    }
    widget.parent = null;
    panel.contentHeader.addWidget(widget);
    widget.addClass('jp-ExecExt-inlineResults');
    return 'inline';
  };

  const results = (panel: NotebookPanel): { widget: MainAreaWidget<ResultsBox>; placement: Placement } => {
    let entry = panels.get(panel.id);
    if (!entry || entry.widget.isDisposed) {
      const widget = new MainAreaWidget({ content: new ResultsBox() });
      widget.id = `jp-ExecExt-results-${panel.id}`;
      widget.title.label = `Results: ${panel.title.label}`;
      widget.title.caption = widget.title.label;
      widget.title.closable = true;
      // It scrolls, so it takes the keyboard focus (MainAreaWidget sets its content to -1).
      widget.content.node.tabIndex = 0;
      entry = { widget, placement: 'split' };
      panels.set(panel.id, entry);
    }
    if (!entry.widget.isAttached) {
      entry.placement = place(panel, entry.widget);
    }
    return entry;
  };

  /** Brings the panel into view without taking focus from where the student is. */
  const reveal = (entry: { widget: MainAreaWidget<ResultsBox>; placement: Placement }): void => {
    if (entry.placement === 'inline') {
      entry.widget.node.scrollIntoView({ block: 'nearest' });
      return;
    }
    if (entry.widget.isVisible) {
      return; // beside the notebook already: nothing to do, and activating it would take the focus
    }
    const focused = document.activeElement as HTMLElement | null;
    shell.activateById(entry.widget.id);
    // Activation focuses the panel in posted messages: run them now, then give the focus back.
    MessageLoop.flush();
    const restore = (): void => {
      if (focused && focused !== document.body && focused.isConnected && document.activeElement !== focused) {
        focused.focus();
      }
    };
    restore();
    requestAnimationFrame(restore);
  };

  /** The busy state on the buttons themselves: they stay focusable, marked `aria-disabled`. */
  const setBusy = (panel: NotebookPanel, busy: boolean): void => {
    if (busy) {
      inFlight.add(panel.id);
    } else {
      inFlight.delete(panel.id);
    }
    options.refreshCommands();
    for (const button of toolbarButtons(panel, 'submit-exercise')) {
      button.setAttribute('aria-disabled', busy ? 'true' : 'false');
      button.classList.toggle('jp-ExecExt-busy', busy);
    }
  };

  commands.addCommand(SUBMIT_COMMAND, {
    label: () => {
      const panel = current();
      return panel && inFlight.has(panel.id) ? 'Submitting…' : 'Submit';
    },
    caption: 'Submit this exercise: your code cells are graded against its tests in the sandbox',
    isVisible: args => {
      const panel = current();
      return !!panel?.model && exerciseId(panel.model) !== null && (args.toolbar !== true || options.showButton());
    },
    // Enabled while in flight too (a disabled button drops the keyboard focus): a repeat is ignored.
    isEnabled: () => {
      const panel = current();
      return !!panel?.model && exerciseId(panel.model) !== null;
    },
    execute: async () => {
      const panel = current();
      const id = panel?.model ? exerciseId(panel.model) : null;
      if (!panel || !panel.model || id === null || inFlight.has(panel.id)) {
        return;
      }
      const focused = document.activeElement as HTMLElement | null;
      const last = lastSubmitted.get(panel.id);
      if (last !== undefined && Date.now() - last < REPEAT_WINDOW_MS) {
        inFlight.add(panel.id); // no second dialog while this one is open
        let answer;
        try {
          answer = await showDialog({
            title: 'Submit again?',
            body: `You submitted this exercise ${Math.max(1, Math.round((Date.now() - last) / 1000))} s ago. Every submission is recorded.`,
            buttons: [Dialog.cancelButton({ label: 'Cancel' }), Dialog.okButton({ label: 'Submit again' })]
          });
        } finally {
          inFlight.delete(panel.id);
        }
        if (!answer.button.accept) {
          focused?.focus();
          return;
        }
      }
      const entry = results(panel);
      const box = entry.widget.content;
      const { code, cells } = collectSubmission(panel.model, options.instructor());
      const cellModels = [...panel.model.cells];
      const gradedNames = cells.map(i => describeCell(i, cellModels[i].sharedModel.getSource()));
      box.setContent(renderPending(document, `Results: ${id}`, 'grading…', 2), true, 'Grading your submission…');
      reveal(entry);
      setBusy(panel, true);
      sandboxActivity.emit('start');
      try {
        const result = await requestAPI<ISubmissionResult>(`exercises/${encodeURIComponent(id)}/submit`, {
          method: 'POST',
          body: JSON.stringify({ code })
        });
        options.onGraded(panel, new Set(cells.map(i => cellModels[i].id)));
        box.setContent(renderSubmission(document, result, gradedNames), false, submissionSummary(result));
      } catch (error) {
        const message = (error as Error).message;
        box.setContent(renderError(document, `Results: ${id}`, message, 2), false, `Submission failed: ${message}`);
      } finally {
        lastSubmitted.set(panel.id, Date.now());
        // The student's attempts so far, under the results (from the server: kept across reloads).
        void showHistory(box.body, id);
        setBusy(panel, false);
        sandboxActivity.emit('end');
        reveal(entry);
        // Focus back where it was if the submission moved it away (lost to the page, or taken
        // by the panel as it opened); where the student moved it meanwhile, it stays.
        const now = document.activeElement;
        const taken =
          now === null ||
          now === document.body ||
          (entry.widget.node.contains(now) && !(focused && entry.widget.node.contains(focused)));
        if (focused && focused.isConnected && taken) {
          focused.focus();
        }
      }
    }
  });

  commands.addCommand(SHOW_RESULTS_COMMAND, {
    label: 'Show submission results',
    caption: 'Reveal the Results panel of this notebook and move the keyboard focus to it',
    isEnabled: () => {
      const panel = current();
      return !!panel && !!panels.get(panel.id)?.widget.isAttached;
    },
    execute: () => {
      const panel = current();
      const entry = panel ? panels.get(panel.id) : undefined;
      if (!entry || !entry.widget.isAttached) {
        return;
      }
      if (entry.placement === 'inline') {
        entry.widget.node.scrollIntoView({ block: 'nearest' });
      } else {
        shell.activateById(entry.widget.id);
      }
      MessageLoop.flush();
      // After the palette (or menu) that ran this has closed and given the focus back.
      const box = entry.widget.content;
      box.focusHeading();
      requestAnimationFrame(() => box.focusHeading());
      window.setTimeout(() => box.focusHeading(), 50);
    }
  });

  addHistoryCommand(
    commands,
    () => {
      const panel = current();
      return panel?.model ? exerciseId(panel.model) : null;
    },
    () => {
      const panel = current();
      if (!panel) {
        return null;
      }
      const entry = results(panel);
      reveal(entry);
      return entry.widget.content.body;
    }
  );

  tracker.widgetAdded.connect((_, panel) => {
    panel.disposed.connect(() => {
      panels.get(panel.id)?.widget.dispose();
      panels.delete(panel.id);
      lastSubmitted.delete(panel.id);
    });
  });
}
