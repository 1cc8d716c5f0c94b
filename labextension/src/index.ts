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

import { requestAPI } from './request.js';
import { CellRunner } from './runcell.js';
import { registerSubmit, SHOW_RESULTS_COMMAND, SUBMIT_COMMAND } from './results.js';
import { SandboxStatus, SandboxStatusModel } from './status.js';
import { gradebookPlugin } from './gradebook-plugin.js';
import { HISTORY_COMMAND } from './history.js';

const PLUGIN_ID = 'jupyter-exec-ext:plugin';
export const CommandIDs = {
  run: 'jupyter-exec-ext:run-in-sandbox',
  stop: 'jupyter-exec-ext:stop-sandbox-run',
  submit: SUBMIT_COMMAND,
  showResults: SHOW_RESULTS_COMMAND,
  setRole: 'jupyter-exec-ext:set-role',
  chooseRole: 'jupyter-exec-ext:choose-role',
  exercisePanel: 'jupyter-exec-ext:exercise-panel'
};

/** A box the extension fills: the results panel of one notebook's submissions. */
class ResultBox extends Widget {
  constructor(className: string) {
    super();
    this.addClass(className);
  }
  setContent(content: HTMLElement): void {
    this.node.replaceChildren(content);
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
    // The sandbox's state: one poll for the status bar item or Notebook 7's toolbar indicators.
    const status = new SandboxStatusModel();

    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refreshCommands = (): void => {
      for (const id of Object.values(CommandIDs)) {
        commands.notifyCommandChanged(id);
      }
    };
    // The box under the cell, the live run, Stop (see runcell.ts).
    const runner = new CellRunner(refreshCommands);
    commands.addCommand(CommandIDs.run, {
      label: () => (runner.isRunning(current()) ? 'Running in sandbox…' : 'Run in sandbox'),
      caption: 'Run the active cell in the Docker sandbox (not in the kernel)',
      // Enabled while busy, so the focused button keeps focus; a duplicate is dropped.
      isEnabled: () => !!current(),
      execute: async () => {
        const panel = current();
        if (panel) {
          await runner.run(panel);
        }
      }
    });
    commands.addCommand(CommandIDs.stop, {
      label: 'Stop sandbox run',
      caption: 'Stop the sandbox run of this notebook (the kernel toolbar’s ■ does the same)',
      isEnabled: () => runner.isRunning(current()),
      execute: () => {
        runner.stop(current());
      }
    });
    // The kernel's ■ (and I, I) also stop the notebook's sandbox run; the kernel is interrupted as
    // before, the sandbox is not the kernel's business.
    commands.commandExecuted.connect((_, executed) => {
      if (executed.id === 'notebook:interrupt-kernel') {
        runner.stop(current());
      }
    });

    registerSubmit(app, tracker, {
      instructor: () => instructor,
      onGraded: (panel, cellIds) => {
        graded.set(panel, cellIds);
        refreshMarks(panel);
      },
      refreshCommands
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
      palette.addItem({ command: CommandIDs.stop, category: 'Sandbox' });
      palette.addItem({ command: CommandIDs.submit, category: 'Sandbox' });
      palette.addItem({ command: CommandIDs.showResults, category: 'Sandbox' });
      palette.addItem({ command: HISTORY_COMMAND, category: 'Sandbox' });
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
      if (!statusBar) {
        // No status bar (Notebook 7): the sandbox's state in the notebook's toolbar instead.
        panel.toolbar.addItem('sandbox-status', new SandboxStatus(status, 'jp-ExecExt-toolbarStatus'));
      }
    });

    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, { item: new SandboxStatus(status), align: 'left', rank: 5 });
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
  }
};

export default [plugin, gradebookPlugin];
