/**
 * The Gradebook panel's place in JupyterLab: its command, palette item and launcher card, and
 * its place in the layout, restored after a reload.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { tableRowsIcon } from '@jupyterlab/ui-components';

import { GradebookView } from './gradebook.js';
import { IModeAnswer, isInstructor } from './grades.js';
import { requestAPI } from './request.js';

export const GRADEBOOK_COMMAND = 'jupyter-exec-ext:gradebook';

/**
 * Adds the Gradebook command (palette and launcher, instructors only). Who is an instructor is
 * the server's word: `authoring/mode` answers `instructor: true|false` (or, from a server without
 * the gradebook, its mode); a server that does not answer gets a student's view.
 */
export const gradebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-exec-ext:gradebook',
  description: "The instructor's Gradebook panel: grades of every student, CSV, test statistics.",
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null
  ) => {
    let instructor = false;
    const tracker = new WidgetTracker<MainAreaWidget<GradebookView>>({ namespace: 'jupyter-exec-ext-gradebook' });
    const known = requestAPI<IModeAnswer>('authoring/mode')
      .then(isInstructor)
      .catch(() => false)
      .then(yes => {
        instructor = yes;
        app.commands.notifyCommandChanged(GRADEBOOK_COMMAND);
        if (instructor && launcher) {
          launcher.add({ command: GRADEBOOK_COMMAND, category: 'Sandbox', rank: 1 });
        }
      });
    app.commands.addCommand(GRADEBOOK_COMMAND, {
      label: 'Gradebook',
      caption: "Every student's grades by exercise, a CSV download and the statistics of each test",
      icon: tableRowsIcon,
      isVisible: () => instructor,
      isEnabled: () => instructor,
      execute: async () => {
        await known; // a restored layout asks before the server has answered
        if (!instructor) {
          return;
        }
        let widget = tracker.currentWidget;
        if (!widget || widget.isDisposed) {
          widget = new MainAreaWidget({ content: new GradebookView() });
          widget.id = 'jp-ExecExt-gradebook';
          widget.title.label = 'Gradebook';
          widget.title.icon = tableRowsIcon;
          widget.title.closable = true;
          void tracker.add(widget);
        } else {
          void widget.content.load();
        }
        if (!widget.isAttached) {
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(widget.id);
      }
    });
    if (palette) {
      palette.addItem({ command: GRADEBOOK_COMMAND, category: 'Sandbox' });
    }
    if (restorer) {
      void restorer.restore(tracker, { command: GRADEBOOK_COMMAND, name: () => 'gradebook' });
    }
  }
};
