/**
 * jupyter-exec-ext's JupyterLab plugin: *Run in sandbox* and *Submit* (notebook toolbar, command
 * palette, a shortcut), the sandbox's state in the status bar, marks on the cells a submission
 * graded, and in instructor mode the authoring tools (role badges and commands, the Exercise
 * panel). Code runs in the server's Docker sandbox through the REST API, never in the kernel.
 *
 * This file only wires the parts together: the commands are in commands.ts (and results.ts for
 * Submit), the settings in settings.ts, the status poll in status.ts, the cell marks in marks.ts.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { CommandIDs, refreshCommands, registerCommands } from './commands.js';
import { gradebookPlugin } from './gradebook-plugin.js';
import { NotebookMarks } from './marks.js';
import { requestAPI } from './request.js';
import { registerSubmit } from './results.js';
import { CellRunner } from './runcell.js';
import { ExtensionSettings, followSettings } from './settings.js';
import { SandboxStatus, SandboxStatusModel } from './status.js';

export { CommandIDs };

const PLUGIN_ID = 'jupyter-exec-ext:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Run and submit code in the Docker sandbox from the notebook toolbar.',
  autoStart: true,
  requires: [INotebookTracker, IEditorServices],
  optional: [ICommandPalette, IStatusBar, IRenderMimeRegistry, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    editorServices: IEditorServices,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    rendermime: IRenderMimeRegistry | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const { commands } = app;
    // Instructor mode is the server's (command 1 --instructor); until it answers, a student's view.
    let instructor = false;
    const marks = new NotebookMarks(() => instructor);
    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refresh = (): void => refreshCommands(commands);
    // The sandbox's state: one poll for the status bar item or Notebook 7's toolbar indicators.
    const status = new SandboxStatusModel();
    const settings = new ExtensionSettings();
    settings.changed.connect((_, now) => {
      status.interval = now.statusPollMs;
      refresh(); // toolbar buttons appear or go
    });
    if (settingRegistry) {
      void followSettings(settingRegistry, PLUGIN_ID, settings);
    }

    registerCommands({
      app,
      current,
      // The box under the cell, the live run, Stop (see runcell.ts).
      runner: new CellRunner(refresh),
      instructor: () => instructor,
      buttons: () => settings.current.buttons,
      refreshMarks: panel => marks.refresh(panel),
      editorServices,
      palette,
      rendermime
    });
    registerSubmit(app, tracker, {
      instructor: () => instructor,
      showButton: () => settings.current.buttons.submit,
      onGraded: (panel, cellIds) => marks.setGraded(panel, cellIds),
      refreshCommands: refresh
    });

    // Submit's visibility depends on the notebook's metadata, known once it has loaded.
    tracker.currentChanged.connect(refresh);
    tracker.widgetAdded.connect((_, panel) => {
      void panel.context.ready.then(() => {
        refresh();
        marks.refresh(panel);
      });
      panel.content.model?.cells.changed.connect(() => marks.refresh(panel));
      panel.context.model.metadataChanged.connect(refresh);
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
        tracker.forEach(panel => marks.refresh(panel));
        refresh();
      });
  }
};

export default [plugin, gradebookPlugin];
