/**
 * jupyter-exec-ext's JupyterLab plugin: *Run in sandbox* and *Submit* (notebook toolbar, command
 * palette, a shortcut), the sandbox's state in the status bar, marks on the cells a submission
 * graded, and in instructor mode the authoring tools (role badges and commands, the Exercise
 * panel). Code runs in the server's Docker sandbox through the REST API, never in the kernel.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IStatusBar } from '@jupyterlab/statusbar';
import { tagIcon } from '@jupyterlab/ui-components';
import { Menu, PanelLayout, Widget } from '@lumino/widgets';

import { askRole, ExercisePanel } from './authoring.js';
import { renderPreview } from './authoring-render.js';
import { applyRole, ROLE_CHOICES, RoleChoice, roleBadge } from './roles.js';

import {
  describeDockerStatus,
  renderError,
  renderExecution,
  renderPending,
  renderSubmission
} from './render.js';
import { requestAPI, SandboxRequestError } from './request.js';
import { IDockerStatus, IExecutionResult, ISubmissionResult } from './types.js';
import { collectSubmission, describeCell, exerciseId } from './notebook.js';

const PLUGIN_ID = 'jupyter-exec-ext:plugin';
export const CommandIDs = {
  run: 'jupyter-exec-ext:run-in-sandbox',
  submit: 'jupyter-exec-ext:submit',
  setRole: 'jupyter-exec-ext:set-role',
  chooseRole: 'jupyter-exec-ext:choose-role',
  exercisePanel: 'jupyter-exec-ext:exercise-panel'
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

/**
 * The marks at the top of a cell: its exercise role (instructor mode) and whether the last
 * submission graded it. Empty, it takes no space.
 */
class CellMarks extends Widget {
  constructor() {
    super();
    this.addClass('jp-ExecExt-cellMarks');
  }
  setMarks(role: string | null, graded: boolean): void {
    const nodes: HTMLElement[] = [];
    if (role) {
      const badge = document.createElement('span');
      badge.className = `jp-ExecExt-roleBadge jp-ExecExt-role-${role}`;
      badge.textContent = role;
      badge.title = `Exercise role: ${role}`;
      nodes.push(badge);
    }
    if (graded) {
      const mark = document.createElement('span');
      mark.className = 'jp-ExecExt-gradedMark';
      mark.textContent = 'graded';
      mark.title = 'This cell was graded in the last submission';
      nodes.push(mark);
    }
    this.node.replaceChildren(...nodes);
    this.node.hidden = nodes.length === 0;
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
  requires: [INotebookTracker, IEditorServices],
  optional: [ICommandPalette, IStatusBar, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    editorServices: IEditorServices,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const { commands, shell } = app;
    // Instructor mode is the server's (command 1 --instructor); until it answers, a student's view.
    let instructor = false;
    const marks = new WeakMap<Cell, CellMarks>();
    // Per notebook: the models of the cells its last submission graded.
    const graded = new WeakMap<NotebookPanel, Set<string>>();
    const exercisePanels = new Map<string, MainAreaWidget<ExercisePanel>>();

    const refreshMarks = (panel: NotebookPanel): void => {
      const gradedIds = graded.get(panel) ?? new Set<string>();
      for (const cell of panel.content.widgets) {
        let mark = marks.get(cell);
        if (!mark || mark.isDisposed) {
          mark = new CellMarks();
          (cell.layout as PanelLayout).insertWidget(0, mark);
          marks.set(cell, mark);
          cell.model.metadataChanged.connect(() => refreshMarks(panel));
        }
        mark.setMarks(instructor ? roleBadge(cell.model) : null, gradedIds.has(cell.model.id));
      }
    };
    // Requests in flight, per notebook and action: a second click while busy sends nothing.
    const busy = new Set<string>();
    const outputs = new WeakMap<Cell, ResultBox>();
    const panels = new Map<string, MainAreaWidget<ResultBox>>();
    const status = new SandboxStatus();

    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refreshCommands = (): void => {
      for (const id of Object.values(CommandIDs)) {
        commands.notifyCommandChanged(id);
      }
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
          // From an exercise notebook, the server adds the exercise's data files to the run.
          const exercise = panel.model ? exerciseId(panel.model) : null;
          const result = await requestAPI<IExecutionResult>('execute', {
            method: 'POST',
            body: JSON.stringify({
              code: cell.model.sharedModel.getSource(),
              ...(exercise ? { exercise_id: exercise } : {})
            })
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
        const { code, cells } = collectSubmission(panel.model, instructor);
        const cellModels = [...panel.model.cells];
        const gradedNames = cells.map(i => describeCell(i, cellModels[i].sharedModel.getSource()));
        results.content.setContent(renderPending(document, `Results: ${id}`, 'grading…'));
        setBusy(key, true);
        try {
          const result = await requestAPI<ISubmissionResult>(
            `exercises/${encodeURIComponent(id)}/submit`,
            { method: 'POST', body: JSON.stringify({ code }) }
          );
          graded.set(panel, new Set(cells.map(i => cellModels[i].id)));
          refreshMarks(panel);
          results.content.setContent(renderSubmission(document, result, gradedNames));
        } catch (error) {
          results.content.setContent(renderError(document, `Results: ${id}`, (error as Error).message));
        } finally {
          setBusy(key, false);
          void status.refresh();
        }
      }
    });

    // -- authoring (instructor mode) ---------------------------------------------------------
    const setRoles = (choice: RoleChoice): void => {
      const panel = current();
      if (!panel) {
        return;
      }
      const selected = panel.content.widgets.filter(c => panel.content.isSelectedOrActive(c));
      try {
        for (const cell of selected) {
          applyRole(cell.model, choice);
        }
      } catch (error) {
        Notification.warning((error as Error).message, { autoClose: 5000 });
      }
      refreshMarks(panel);
    };
    commands.addCommand(CommandIDs.setRole, {
      label: args => {
        const choice = ROLE_CHOICES.find(c => c.id === args.role);
        return choice ? choice.label : 'Set exercise role';
      },
      caption: args => ROLE_CHOICES.find(c => c.id === args.role)?.help ?? '',
      isVisible: () => instructor,
      isEnabled: () => instructor && !!current()?.content.activeCell,
      execute: args => setRoles(args.role as RoleChoice)
    });
    commands.addCommand(CommandIDs.chooseRole, {
      label: 'Role…',
      caption: 'Set the exercise role of the selected cells (prompt, starter, solution, …)',
      icon: tagIcon,
      isVisible: () => instructor,
      execute: async () => {
        const cell = current()?.content.activeCell;
        if (!cell) {
          return;
        }
        const choice = await askRole(roleBadge(cell.model));
        if (choice) {
          setRoles(choice);
        }
      }
    });
    const openPreview = (nb: any, title: string): void => {
      const content = new ResultBox('jp-ExecExt-previewPanel');
      const render = (markdown: string, host: HTMLElement): void => {
        if (!rendermime) {
          host.textContent = markdown;
          return;
        }
        const renderer = rendermime.createRenderer('text/markdown');
        void renderer.renderModel(new MimeModel({ data: { 'text/markdown': markdown } }));
        host.appendChild(renderer.node);
      };
      content.setContent(renderPreview(document, nb, render));
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-ExecExt-preview-${Date.now()}`;
      widget.title.label = `Student preview: ${title}`;
      widget.title.closable = true;
      shell.add(widget, 'main', { mode: 'tab-after' });
      shell.activateById(widget.id);
    };
    commands.addCommand(CommandIDs.exercisePanel, {
      label: 'Exercise',
      caption: 'Edit this exercise: id, title and tests; validate, preview and release it',
      icon: tagIcon,
      isVisible: () => instructor && !!current(),
      execute: () => {
        const panel = current();
        if (!panel) {
          return;
        }
        let widget = exercisePanels.get(panel.id);
        if (!widget || widget.isDisposed) {
          widget = new MainAreaWidget({ content: new ExercisePanel(panel, editorServices, openPreview) });
          widget.id = `jp-ExecExt-exercise-${panel.id}`;
          widget.title.label = `Exercise: ${panel.title.label}`;
          widget.title.closable = true;
          exercisePanels.set(panel.id, widget);
          panel.disposed.connect(() => widget?.dispose());
        }
        if (!widget.isAttached) {
          shell.add(widget, 'main', { mode: 'split-right', ref: panel.id });
        }
        shell.activateById(widget.id);
      }
    });
    const roleMenu = new Menu({ commands });
    roleMenu.title.label = 'Exercise role';
    for (const choice of ROLE_CHOICES) {
      roleMenu.addItem({ command: CommandIDs.setRole, args: { role: choice.id } });
    }
    app.contextMenu.addItem({ type: 'submenu', submenu: roleMenu, selector: '.jp-Notebook .jp-Cell', rank: 0 });

    if (palette) {
      palette.addItem({ command: CommandIDs.run, category: 'Sandbox' });
      palette.addItem({ command: CommandIDs.submit, category: 'Sandbox' });
      palette.addItem({ command: CommandIDs.exercisePanel, category: 'Sandbox' });
      for (const choice of ROLE_CHOICES) {
        palette.addItem({ command: CommandIDs.setRole, args: { role: choice.id }, category: 'Exercise role' });
      }
    }

    // Submit's visibility depends on the notebook's metadata, known once it has loaded.
    tracker.currentChanged.connect(refreshCommands);
    tracker.widgetAdded.connect((_, panel) => {
      void panel.context.ready.then(() => {
        refreshCommands();
        refreshMarks(panel);
      });
      panel.content.model?.cells.changed.connect(() => refreshMarks(panel));
      panel.context.model.metadataChanged.connect(refreshCommands);
      panel.disposed.connect(() => {
        panels.get(panel.id)?.dispose();
        panels.delete(panel.id);
      });
    });

    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, { item: status, align: 'left', rank: 5 });
    }
    void requestAPI<{ mode: string }>('authoring/mode')
      .then(answer => {
        instructor = answer.mode === 'instructor';
      })
      .catch(() => {
        instructor = false; // a server without the route (e.g. forwarding to a hub) is a student's
      })
      .then(() => {
        document.body.dataset.execExtMode = instructor ? 'instructor' : 'student';
        tracker.forEach(refreshMarks);
        refreshCommands();
      });
    void status.refresh();
    window.setInterval(() => void status.refresh(), STATUS_POLL_MS);
  }
};

export default plugin;
