/**
 * jupyter-exec-ext's JupyterLab plugin: *Run in sandbox* and *Submit* (notebook toolbar, command
 * palette, a shortcut) and the sandbox's state in the status bar. Code runs in the server's
 * Docker sandbox through the REST API, never in the notebook's kernel.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { PanelLayout, Widget } from '@lumino/widgets';

import {
  describeDockerStatus,
  renderError,
  renderExecution,
  renderPending,
  renderSubmission
} from './render.js';
import { requestAPI, SandboxRequestError } from './request.js';
import { IDockerStatus, IExecutionResult, ISubmissionResult } from './types.js';
import { collectSubmission, exerciseId } from './notebook.js';

const PLUGIN_ID = 'jupyter-exec-ext:plugin';
export const CommandIDs = {
  run: 'jupyter-exec-ext:run-in-sandbox',
  submit: 'jupyter-exec-ext:submit'
};
/** Often enough to notice Docker going away, rare enough to cost nothing. */
const STATUS_POLL_MS = 10_000;

/**
 * A box the extension fills: the sandbox output under one cell (a later run of the cell replaces
 * its content) or the results panel of one notebook's submissions.
 */
class ResultBox extends Widget {
  constructor(className: string) {
    super();
    this.addClass(className);
  }
  setContent(content: HTMLElement): void {
    this.node.replaceChildren(content);
  }
}

/** The status bar item: the sandbox's state, refreshed by polling `docker/status`. */
class SandboxStatus extends Widget {
  constructor() {
    super();
    this.addClass('jp-ExecExt-status');
    this.node.textContent = 'Sandbox: ?';
  }

  async refresh(): Promise<void> {
    let view;
    try {
      view = describeDockerStatus(await requestAPI<IDockerStatus>('docker/status'));
    } catch (error) {
      const reason = error instanceof SandboxRequestError ? error.reason : null;
      view = describeDockerStatus(null, (error as Error).message, reason);
    }
    this.node.textContent = view.text;
    this.node.title = view.title;
    this.node.dataset.state = view.state;
  }
}

function outputOf(cell: Cell, outputs: WeakMap<Cell, ResultBox>): ResultBox {
  let output = outputs.get(cell);
  if (!output || output.isDisposed) {
    output = new ResultBox('jp-ExecExt-cellOutput');
    // The cell's own layout: the box sits right under the cell and moves with it.
    (cell.layout as PanelLayout).addWidget(output);
    outputs.set(cell, output);
  }
  return output;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Run and submit code in the Docker sandbox from the notebook toolbar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const { commands, shell } = app;
    // Requests in flight, per notebook and action: a second click while busy sends nothing.
    const busy = new Set<string>();
    const outputs = new WeakMap<Cell, ResultBox>();
    const panels = new Map<string, MainAreaWidget<ResultBox>>();
    const status = new SandboxStatus();

    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refreshCommands = (): void => {
      commands.notifyCommandChanged(CommandIDs.run);
      commands.notifyCommandChanged(CommandIDs.submit);
    };
    const setBusy = (key: string, on: boolean): void => {
      if (on) {
        busy.add(key);
      } else {
        busy.delete(key);
      }
      refreshCommands();
    };

    commands.addCommand(CommandIDs.run, {
      label: () => {
        const panel = current();
        return panel && busy.has(`run:${panel.id}`) ? 'Running in sandbox…' : 'Run in sandbox';
      },
      caption: 'Run the active cell in the Docker sandbox (not in the kernel)',
      isEnabled: () => {
        const panel = current();
        return !!panel && !busy.has(`run:${panel.id}`);
      },
      execute: async () => {
        const panel = current();
        const cell = panel?.content.activeCell;
        if (!panel || !cell) {
          return;
        }
        const key = `run:${panel.id}`;
        if (busy.has(key)) {
          return;
        }
        if (cell.model.type !== 'code') {
          Notification.warning('Run in sandbox runs code cells; select a code cell.', { autoClose: 4000 });
          return;
        }
        const output = outputOf(cell, outputs);
        output.setContent(renderPending(document, 'Sandbox output', 'running…'));
        setBusy(key, true);
        try {
          const result = await requestAPI<IExecutionResult>('execute', {
            method: 'POST',
            body: JSON.stringify({ code: cell.model.sharedModel.getSource() })
          });
          output.setContent(renderExecution(document, result));
        } catch (error) {
          output.setContent(renderError(document, 'Sandbox output', (error as Error).message));
        } finally {
          setBusy(key, false);
          void status.refresh();
        }
      }
    });

    commands.addCommand(CommandIDs.submit, {
      label: () => {
        const panel = current();
        return panel && busy.has(`submit:${panel.id}`) ? 'Submitting…' : 'Submit';
      },
      caption: 'Submit this exercise: your code cells are graded against its tests in the sandbox',
      isVisible: () => {
        const panel = current();
        return !!panel?.model && exerciseId(panel.model) !== null;
      },
      isEnabled: () => {
        const panel = current();
        return !!panel?.model && exerciseId(panel.model) !== null && !busy.has(`submit:${panel.id}`);
      },
      execute: async () => {
        const panel = current();
        const id = panel?.model ? exerciseId(panel.model) : null;
        if (!panel || !panel.model || id === null) {
          return;
        }
        const key = `submit:${panel.id}`;
        if (busy.has(key)) {
          return;
        }
        let results = panels.get(panel.id);
        if (!results || results.isDisposed) {
          results = new MainAreaWidget({ content: new ResultBox('jp-ExecExt-resultsPanel') });
          results.id = `jp-ExecExt-results-${panel.id}`;
          results.title.label = `Results: ${panel.title.label}`;
          results.title.closable = true;
          panels.set(panel.id, results);
        }
        if (!results.isAttached) {
          shell.add(results, 'main', { mode: 'split-right', ref: panel.id });
        }
        const code = collectSubmission(panel.model);
        results.content.setContent(renderPending(document, `Results: ${id}`, 'grading…'));
        setBusy(key, true);
        try {
          const result = await requestAPI<ISubmissionResult>(
            `exercises/${encodeURIComponent(id)}/submit`,
            { method: 'POST', body: JSON.stringify({ code }) }
          );
          results.content.setContent(renderSubmission(document, result));
        } catch (error) {
          results.content.setContent(renderError(document, `Results: ${id}`, (error as Error).message));
        } finally {
          setBusy(key, false);
          void status.refresh();
        }
      }
    });

    if (palette) {
      palette.addItem({ command: CommandIDs.run, category: 'Sandbox' });
      palette.addItem({ command: CommandIDs.submit, category: 'Sandbox' });
    }

    // Submit's visibility depends on the notebook's metadata, known once it has loaded.
    tracker.currentChanged.connect(refreshCommands);
    tracker.widgetAdded.connect((_, panel) => {
      void panel.context.ready.then(refreshCommands);
      panel.context.model.metadataChanged.connect(refreshCommands);
      panel.disposed.connect(() => {
        panels.get(panel.id)?.dispose();
        panels.delete(panel.id);
      });
    });

    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, { item: status, align: 'left', rank: 5 });
    }
    void status.refresh();
    window.setInterval(() => void status.refresh(), STATUS_POLL_MS);
  }
};

export default plugin;
