// The sandbox state's poll and its view, in jsdom with a fake server: nothing is asked while no
// view shows the state, a view asks at once, a run or submission starting asks at once, and the
// text (which a screen reader announces) is written only when it changes.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';

import { ServerConnection } from '@jupyterlab/services';

// A jsdom page as the globals lumino reads when its modules load (imported in the test, after this).
const dom = new JSDOM('<!doctype html><body></body>', { pretendToBeVisual: true });
Object.assign(globalThis, {
  window: dom.window, document: dom.window.document, navigator: dom.window.navigator,
  HTMLElement: dom.window.HTMLElement, Element: dom.window.Element, Node: dom.window.Node,
  MutationObserver: dom.window.MutationObserver, requestAnimationFrame: dom.window.requestAnimationFrame,
  getComputedStyle: dom.window.getComputedStyle, Event: dom.window.Event, MouseEvent: dom.window.MouseEvent,
  KeyboardEvent: dom.window.KeyboardEvent, FocusEvent: dom.window.FocusEvent,
  // jsdom has no drag and drop; lumino only extends the class when it loads.
  DragEvent: class DragEvent extends dom.window.MouseEvent {}
});

const READY = { docker: { enabled: true, reachable: true, image_present: true, image: 'img' }, runs: { in_flight: 0, queued: 0 } };

function fakeServer() {
  const asked: string[] = [];
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/', wsUrl: 'ws://127.0.0.1:8888/', token: 't', appendToken: false,
    fetch: async (input: RequestInfo) => {
      asked.push((input as Request).url);
      return new Response(JSON.stringify(READY), { status: 200, headers: { 'Content-Type': 'application/json' } });
    },
    Request, Headers
  } as any);
  return { settings, asked };
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

test('the state is asked only while a view shows it, and at once on sandbox activity', async () => {
  // Loaded once the page's globals exist (lumino reads them as its modules load).
  const { Widget } = await import('@lumino/widgets');
  const { sandboxActivity } = await import('../src/activity');
  const { SandboxStatus, SandboxStatusModel } = await import('../src/status');
  const { settings, asked } = fakeServer();
  const model = new SandboxStatusModel(60_000, settings);
  const view = new SandboxStatus(model);
  await sleep(200);
  assert.equal(asked.length, 0, 'polled with nothing showing the state');

  Widget.attach(view, document.body);
  await sleep(200);
  assert.equal(asked.length, 1, 'a view that shows did not ask at once');
  const text = view.node.querySelector('.jp-ExecExt-status') as HTMLElement;
  assert.equal(text.textContent, 'Sandbox: ready');
  assert.equal(text.getAttribute('role'), 'status');
  assert.equal(text.tabIndex, 0);
  assert.equal(document.getElementById(text.getAttribute('aria-describedby')!)!.textContent,
    'Docker is running and the executor image is present');

  // The same answer again: the text is not rewritten, so nothing is announced twice.
  let mutations = 0;
  new MutationObserver(records => (mutations += records.length)).observe(text, { childList: true, characterData: true, subtree: true });
  sandboxActivity.emit('start');
  await sleep(200);
  assert.equal(asked.length, 2, 'a run starting did not refresh the state at once');
  assert.equal(mutations, 0);

  // A toolbar that makes it -1 (Notebook 7's): it stays a Tab stop.
  text.tabIndex = -1;
  await sleep(10);
  assert.equal(text.tabIndex, 0);

  view.hide();
  sandboxActivity.emit('end');
  await sleep(200);
  assert.equal(asked.length, 2, 'asked while hidden');
  view.dispose();
  model.dispose();
});
