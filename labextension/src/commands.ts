/**
 * The commands of the notebook side: *Run in sandbox* and *Stop sandbox run*, and in instructor
 * mode the exercise roles and the Exercise panel; their palette items and the role context menu.
 * *Submit* and *Show submission results* are in results.ts, *Submission history* in history.ts.
 *
 * A toolbar button runs its command with `{ toolbar: true }` (JupyterLab's toolbar registry adds
 * it), so a button the settings hide is hidden there alone: the palette, the context menu and the
 * shortcut keep the command.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { tagIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { Menu, Widget } from '@lumino/widgets';

import { askRole, ExercisePanel } from './authoring.js';
import { renderPreview } from './authoring-render.js';
import { HISTORY_COMMAND } from './history.js';
import { SHOW_RESULTS_COMMAND, SUBMIT_COMMAND } from './results.js';
import { applyRole, ROLE_CHOICES, RoleChoice, roleBadge } from './roles.js';
import { IToolbarButtons } from './settings.js';

export const CommandIDs = {
  run: 'jupyter-exec-ext:run-in-sandbox',
  stop: 'jupyter-exec-ext:stop-sandbox-run',
  submit: SUBMIT_COMMAND,
  showResults: SHOW_RESULTS_COMMAND,
  setRole: 'jupyter-exec-ext:set-role',
  chooseRole: 'jupyter-exec-ext:choose-role',
  exercisePanel: 'jupyter-exec-ext:exercise-panel'
};

/** The palette category of the sandbox's commands. */
export const PALETTE_CATEGORY = 'Sandbox';

/** What the commands need from the application and from the plugin's state. */
export interface ICommandsOptions {
  app: Pick<JupyterFrontEnd, 'commands' | 'shell' | 'contextMenu'>;
  /** The notebook the commands act on (the tracker's current one). */
  current: () => NotebookPanel | null;
  /** The sandbox runs of the notebooks (runcell.ts's `CellRunner`). */
  runner: {
    isRunning(panel: NotebookPanel | null): boolean;
    run(panel: NotebookPanel): Promise<void>;
    stop(panel: NotebookPanel | null): boolean;
  };
  /** Whether the server is in instructor mode (false until it has answered). */
  instructor: () => boolean;
  /** Which toolbar buttons the settings show. */
  buttons: () => IToolbarButtons;
  /** Redraws a notebook's cell marks (after a role changed). */
  refreshMarks: (panel: NotebookPanel) => void;
  editorServices: IEditorServices;
  palette: ICommandPalette | null;
  rendermime: IRenderMimeRegistry | null;
}

/** Whether a command shows where `args` says it runs: a toolbar button only if `shown`. */
export function shownWhere(args: { toolbar?: unknown }, shown: boolean): boolean {
  return args.toolbar !== true || shown;
}

/** Tells every view of the commands (toolbar buttons, palette, menus) to redraw them. */
export function refreshCommands(commands: CommandRegistry): void {
  for (const id of Object.values(CommandIDs)) {
    commands.notifyCommandChanged(id);
  }
}

/** A box the extension fills: the student preview of an exercise. */
class ContentBox extends Widget {
  constructor(className: string) {
    super();
    this.addClass(className);
  }

  setContent(content: HTMLElement): void {
    this.node.replaceChildren(content);
  }
}

/** Adds the run, stop, role and Exercise panel commands, their palette items and the role menu. */
export function registerCommands(options: ICommandsOptions): void {
  const { app, current, runner, instructor, buttons } = options;
  const { commands, shell } = app;

  commands.addCommand(CommandIDs.run, {
    label: () => (runner.isRunning(current()) ? 'Running in sandbox…' : 'Run in sandbox'),
    caption: 'Run the active cell in the Docker sandbox (not in the kernel)',
    isVisible: args => shownWhere(args, buttons().runInSandbox),
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
    options.refreshMarks(panel);
  };
  commands.addCommand(CommandIDs.setRole, {
    label: args => {
      const choice = ROLE_CHOICES.find(c => c.id === args.role);
      return choice ? choice.label : 'Set exercise role';
    },
    caption: args => ROLE_CHOICES.find(c => c.id === args.role)?.help ?? '',
    isVisible: () => instructor(),
    isEnabled: () => instructor() && !!current()?.content.activeCell,
    execute: args => setRoles(args.role as RoleChoice)
  });
  commands.addCommand(CommandIDs.chooseRole, {
    label: 'Role…',
    caption: 'Set the exercise role of the selected cells (prompt, starter, solution, …)',
    icon: tagIcon,
    isVisible: args => instructor() && shownWhere(args, buttons().role),
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

  const openPreview = (nb: unknown, title: string): void => {
    const content = new ContentBox('jp-ExecExt-previewPanel');
    const render = (markdown: string, host: HTMLElement): void => {
      if (!options.rendermime) {
        host.textContent = markdown;
        return;
      }
      const renderer = options.rendermime.createRenderer('text/markdown');
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
  const exercisePanels = new Map<string, MainAreaWidget<ExercisePanel>>();
  commands.addCommand(CommandIDs.exercisePanel, {
    label: 'Exercise',
    caption: 'Edit this exercise: id, title and tests; validate, preview and release it',
    icon: tagIcon,
    isVisible: args => instructor() && !!current() && shownWhere(args, buttons().exercise),
    execute: () => {
      const panel = current();
      if (!panel) {
        return;
      }
      let widget = exercisePanels.get(panel.id);
      if (!widget || widget.isDisposed) {
        widget = new MainAreaWidget({ content: new ExercisePanel(panel, options.editorServices, openPreview) });
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

  const { palette } = options;
  if (palette) {
    for (const command of [
      CommandIDs.run,
      CommandIDs.stop,
      CommandIDs.submit,
      CommandIDs.showResults,
      HISTORY_COMMAND,
      CommandIDs.exercisePanel
    ]) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
    for (const choice of ROLE_CHOICES) {
      palette.addItem({ command: CommandIDs.setRole, args: { role: choice.id }, category: 'Exercise role' });
    }
  }
}
