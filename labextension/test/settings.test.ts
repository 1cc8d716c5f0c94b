// The settings: how the registry's values read (seconds to ms, bounds, a wrong type falls back to
// the default), that a change is signalled once, that the registry's changes are followed, and
// that a new poll interval applies at once to the status poll.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';

import { ServerConnection } from '@jupyterlab/services';

import { DEFAULT_SETTINGS, ExtensionSettings, followSettings, readSettings } from '../src/settings';

const dom = new JSDOM('<!doctype html><body></body>', { pretendToBeVisual: true });
Object.assign(globalThis, {
  window: dom.window, document: dom.window.document, navigator: dom.window.navigator,
  HTMLElement: dom.window.HTMLElement, Element: dom.window.Element, Node: dom.window.Node,
  MutationObserver: dom.window.MutationObserver, requestAnimationFrame: dom.window.requestAnimationFrame,
  getComputedStyle: dom.window.getComputedStyle, Event: dom.window.Event, MouseEvent: dom.window.MouseEvent,
  KeyboardEvent: dom.window.KeyboardEvent, FocusEvent: dom.window.FocusEvent,
  DragEvent: class DragEvent extends dom.window.MouseEvent {}
});

const SCHEMA = JSON.parse(readFileSync(join(__dirname, '..', '..', 'schema', 'plugin.json'), 'utf8'));

test("the defaults are the schema's", () => {
  const defaults: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries<any>(SCHEMA.properties)) {
    defaults[key] = spec.default;
  }
  assert.deepEqual(readSettings(defaults), DEFAULT_SETTINGS);
  assert.deepEqual(readSettings({}), DEFAULT_SETTINGS);
  assert.equal(SCHEMA.additionalProperties, false);
});

test('values read: seconds to ms within the bounds, booleans per button, wrong types ignored', () => {
  assert.equal(readSettings({ statusPollInterval: 2.5 }).statusPollMs, 2500);
  assert.equal(readSettings({ statusPollInterval: 0 }).statusPollMs, SCHEMA.properties.statusPollInterval.minimum * 1000);
  assert.equal(readSettings({ statusPollInterval: 1e9 }).statusPollMs, SCHEMA.properties.statusPollInterval.maximum * 1000);
  assert.equal(readSettings({ statusPollInterval: '5' }).statusPollMs, DEFAULT_SETTINGS.statusPollMs);
  assert.equal(readSettings({ statusPollInterval: NaN }).statusPollMs, DEFAULT_SETTINGS.statusPollMs);
  assert.deepEqual(readSettings({ showSubmit: false, showRole: false, showExercise: 'no' }).buttons, {
    runInSandbox: true, submit: false, exercise: true, role: false
  });
  assert.deepEqual(readSettings({ showRunInSandbox: false }).buttons.runInSandbox, false);
});

test('a change is signalled once; the same values again are not', () => {
  const settings = new ExtensionSettings();
  const seen: number[] = [];
  settings.changed.connect((_, now) => void seen.push(now.statusPollMs));
  settings.update({ statusPollInterval: 10 });
  assert.deepEqual(seen, [], 'the defaults again were signalled');
  settings.update({ statusPollInterval: 3 });
  settings.update({ statusPollInterval: 3 });
  assert.deepEqual(seen, [3000]);
  assert.equal(settings.current.statusPollMs, 3000);
});

test("followSettings reads the registry's composite and follows its changes; a failure keeps the defaults", async () => {
  const listeners: (() => void)[] = [];
  const loaded = {
    composite: { statusPollInterval: 4, showSubmit: false } as Record<string, unknown>,
    changed: { connect: (fn: () => void) => void listeners.push(fn) }
  };
  const asked: string[] = [];
  const registry = { load: async (id: string) => (asked.push(id), loaded) } as any;
  const settings = new ExtensionSettings();
  await followSettings(registry, 'jupyter-exec-ext:plugin', settings);
  assert.deepEqual(asked, ['jupyter-exec-ext:plugin']);
  assert.equal(settings.current.statusPollMs, 4000);
  assert.equal(settings.current.buttons.submit, false);
  loaded.composite = { statusPollInterval: 4, showSubmit: true };
  listeners.forEach(fn => fn());
  assert.equal(settings.current.buttons.submit, true);

  const broken = new ExtensionSettings();
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (message: string) => void warnings.push(message);
  try {
    await followSettings({ load: async () => { throw new Error('bad JSON'); } } as any, 'x', broken);
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(broken.current, DEFAULT_SETTINGS);
  assert.match(warnings[0], /bad JSON/);
});

test('a new poll interval applies at once to the status poll', async () => {
  const { Widget } = await import('@lumino/widgets');
  const { SandboxStatus, SandboxStatusModel } = await import('../src/status');
  const asked: number[] = [];
  const server = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/', wsUrl: 'ws://127.0.0.1:8888/', token: 't', appendToken: false,
    fetch: async () => {
      asked.push(Date.now());
      const ready = { docker: { enabled: true, reachable: true, image_present: true, image: 'i' }, runs: { in_flight: 0, queued: 0 } };
      return new Response(JSON.stringify(ready), { status: 200, headers: { 'Content-Type': 'application/json' } });
    },
    Request, Headers
  } as any);
  const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));
  const model = new SandboxStatusModel(60_000, server);
  const view = new SandboxStatus(model);
  Widget.attach(view, document.body);
  await sleep(300);
  assert.equal(asked.length, 1, 'the view did not ask once at first');
  await sleep(700);
  assert.equal(asked.length, 1, 'polled before a minute');

  model.interval = 200;
  assert.equal(model.interval, 200);
  await sleep(1100);
  assert.ok(asked.length >= 4 && asked.length <= 8, `at 200 ms, ${asked.length - 1} polls in 1.1 s`);

  // Longer than lumino's default maximum (30 s) is allowed too; polling slows down at once.
  model.interval = 3600_000;
  const before = asked.length;
  await sleep(600);
  assert.ok(asked.length - before <= 1, `still polling fast after the change: ${asked.length - before}`);
  view.dispose();
  model.dispose();
});
