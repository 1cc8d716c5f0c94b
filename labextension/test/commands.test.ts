// The commands module against lumino's real CommandRegistry, with a stand-in for the notebook and
// the application around it: a setting hides a toolbar button and nothing else, the instructor's
// commands stay hidden from students, run and stop reach the runner, roles are written to the
// selected cells, and the palette lists the sandbox's commands.
import './dom-globals';
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { CommandRegistry } from '@lumino/commands';

import { CommandIDs, PALETTE_CATEGORY, refreshCommands, registerCommands, shownWhere } from '../src/commands';
import { HISTORY_COMMAND } from '../src/history';
import { METADATA_KEY } from '../src/notebook';
import { DEFAULT_SETTINGS, IToolbarButtons } from '../src/settings';

/** A cell model as the commands use it: type, id and metadata. */
function cellModel(type: string, id: string) {
  const metadata = new Map<string, any>();
  return {
    type,
    id,
    getMetadata: (key: string) => metadata.get(key),
    setMetadata: (key: string, value: any) => void metadata.set(key, value),
    deleteMetadata: (key: string) => void metadata.delete(key),
    metadata
  };
}

/** A notebook panel with `cells`, of which those at `selected` are selected. */
function notebook(cells: ReturnType<typeof cellModel>[], selected: number[]) {
  const widgets = cells.map(model => ({ model }));
  return {
    id: 'nb-1',
    content: {
      widgets,
      activeCell: widgets[selected[0]] ?? null,
      isSelectedOrActive: (cell: any) => selected.includes(widgets.indexOf(cell))
    }
  } as any;
}

function setUp(options: { instructor?: boolean; buttons?: Partial<IToolbarButtons>; panel?: any } = {}) {
  const commands = new CommandRegistry();
  const state = {
    instructor: options.instructor ?? false,
    buttons: { ...DEFAULT_SETTINGS.buttons, ...options.buttons },
    panel: options.panel ?? null,
    runs: [] as any[],
    stops: [] as any[],
    running: false,
    marksRefreshed: 0,
    palette: [] as { command: string; category: string; args?: any }[],
    contextMenu: [] as any[]
  };
  registerCommands({
    app: { commands, shell: {} as any, contextMenu: { addItem: (item: any) => state.contextMenu.push(item) } as any },
    current: () => state.panel,
    runner: {
      isRunning: () => state.running,
      run: async panel => void state.runs.push(panel),
      stop: panel => {
        state.stops.push(panel);
        return state.running;
      }
    },
    instructor: () => state.instructor,
    buttons: () => state.buttons,
    refreshMarks: () => void state.marksRefreshed++,
    editorServices: {} as any,
    palette: { addItem: (item: any) => state.palette.push(item) } as any,
    rendermime: null
  });
  // Registered by results.ts in the plugin.
  commands.addCommand(CommandIDs.submit, { execute: () => undefined });
  commands.addCommand(CommandIDs.showResults, { execute: () => undefined });
  return { commands, state };
}

const TOOLBAR = { toolbar: true };

test('shownWhere: only a toolbar button follows its setting', () => {
  assert.equal(shownWhere({}, false), true);
  assert.equal(shownWhere({ toolbar: true }, false), false);
  assert.equal(shownWhere({ toolbar: true }, true), true);
  assert.equal(shownWhere({ toolbar: 'yes' }, false), true);
});

test('a hidden Run in sandbox button hides the toolbar item only; the change shows at once', () => {
  const panel = notebook([cellModel('code', 'a')], [0]);
  const { commands, state } = setUp({ panel });
  assert.equal(commands.isVisible(CommandIDs.run, TOOLBAR), true);
  let notified = 0;
  commands.commandChanged.connect((_, change) => {
    if (change.id === CommandIDs.run) {
      notified++;
    }
  });
  state.buttons = { ...state.buttons, runInSandbox: false };
  refreshCommands(commands);
  assert.equal(notified, 1, 'the toolbar was not told to redraw the button');
  assert.equal(commands.isVisible(CommandIDs.run, TOOLBAR), false);
  assert.equal(commands.isVisible(CommandIDs.run, {}), true, 'the palette lost the command');
  assert.equal(commands.isEnabled(CommandIDs.run, {}), true);
});

test('run and stop reach the runner for the current notebook; the kernel interrupt stops too', async () => {
  const panel = notebook([cellModel('code', 'a')], [0]);
  const { commands, state } = setUp({ panel });
  assert.equal(commands.label(CommandIDs.run), 'Run in sandbox');
  await commands.execute(CommandIDs.run);
  assert.deepEqual(state.runs, [panel]);
  assert.equal(commands.isEnabled(CommandIDs.stop), false, 'Stop enabled with nothing running');
  state.running = true;
  assert.equal(commands.label(CommandIDs.run), 'Running in sandbox…');
  assert.equal(commands.isEnabled(CommandIDs.stop), true);
  await commands.execute(CommandIDs.stop);
  assert.deepEqual(state.stops, [panel]);
  commands.addCommand('notebook:interrupt-kernel', { execute: () => undefined });
  await commands.execute('notebook:interrupt-kernel');
  assert.equal(state.stops.length, 2, 'the kernel’s ■ did not stop the sandbox run');
});

test('without a notebook, Run in sandbox is disabled and does nothing', async () => {
  const { commands, state } = setUp();
  assert.equal(commands.isEnabled(CommandIDs.run), false);
  await commands.execute(CommandIDs.run);
  assert.equal(state.runs.length, 0);
});

test('role and Exercise commands: hidden from students; their toolbar buttons follow the settings', () => {
  const panel = notebook([cellModel('code', 'a')], [0]);
  const student = setUp({ panel });
  for (const id of [CommandIDs.setRole, CommandIDs.chooseRole, CommandIDs.exercisePanel]) {
    assert.equal(student.commands.isVisible(id, {}), false, `${id} visible to a student`);
  }
  const { commands, state } = setUp({ panel, instructor: true });
  assert.equal(commands.isVisible(CommandIDs.exercisePanel, TOOLBAR), true);
  assert.equal(commands.isVisible(CommandIDs.chooseRole, TOOLBAR), true);
  state.buttons = { ...state.buttons, exercise: false, role: false };
  assert.equal(commands.isVisible(CommandIDs.exercisePanel, TOOLBAR), false);
  assert.equal(commands.isVisible(CommandIDs.chooseRole, TOOLBAR), false);
  assert.equal(commands.isVisible(CommandIDs.exercisePanel, {}), true, 'the palette lost Exercise');
  assert.equal(commands.isVisible(CommandIDs.setRole, { role: 'student' }), true);
});

test('Set exercise role writes the role of every selected cell and redraws the marks', async () => {
  const cells = [cellModel('code', 'a'), cellModel('code', 'b'), cellModel('code', 'c')];
  const { commands, state } = setUp({ panel: notebook(cells, [0, 2]), instructor: true });
  assert.equal(commands.label(CommandIDs.setRole, { role: 'solution' }), 'Solution');
  assert.equal(commands.isEnabled(CommandIDs.setRole, { role: 'solution' }), true);
  await commands.execute(CommandIDs.setRole, { role: 'solution' });
  assert.deepEqual(cells[0].getMetadata(METADATA_KEY), { role: 'solution' });
  assert.equal(cells[1].getMetadata(METADATA_KEY), undefined, 'an unselected cell changed');
  assert.deepEqual(cells[2].getMetadata(METADATA_KEY), { role: 'solution' });
  await commands.execute(CommandIDs.setRole, { role: 'read-only' });
  assert.equal(cells[0].getMetadata(METADATA_KEY), undefined);
  assert.equal(cells[0].getMetadata('editable'), false);
  assert.equal(state.marksRefreshed, 2);
});

test('the palette lists the sandbox commands and one item per role; the context menu has the roles', () => {
  const { state } = setUp();
  const sandbox = state.palette.filter(item => item.category === PALETTE_CATEGORY).map(item => item.command);
  assert.deepEqual(sandbox, [
    CommandIDs.run,
    CommandIDs.stop,
    CommandIDs.submit,
    CommandIDs.showResults,
    HISTORY_COMMAND,
    CommandIDs.exercisePanel
  ]);
  const roles = state.palette.filter(item => item.category === 'Exercise role').map(item => item.args.role);
  assert.deepEqual(roles, ['prompt', 'starter', 'solution', 'student', 'read-only', 'none']);
  assert.equal(state.contextMenu.length, 1);
  assert.equal(state.contextMenu[0].submenu.items.length, 6);
});
