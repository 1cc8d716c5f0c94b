import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';
import { ServerConnection } from '@jupyterlab/services';

import { LiveRun, liveUrl } from '../src/live';
import { elapsedText, LiveView, policyMessages, spokenSummary } from '../src/outputbox';

const dom = new JSDOM('<!doctype html><body></body>');
const doc = dom.window.document;
const text = (node: Element | null) => (node ? node.textContent ?? '' : '');

/**
 * A socket the test drives: it records what the client sends; `open`, `receive` and `close` play
 * the server's side. `refuse` makes every new socket close before opening (no WebSocket route).
 */
class FakeSocket {
  static last: FakeSocket | null = null;
  static refuse = false;
  readyState = 0;
  sent: any[] = [];
  onopen: (() => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.last = this;
    if (FakeSocket.refuse) {
      setTimeout(() => this.close(1006), 0);
    }
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) {
      return;
    }
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function settings(posts: any[] = [], answer: (body: any) => Response = () => json(200, RESULT)) {
  return ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/base/',
    wsUrl: 'ws://127.0.0.1:8888/base/',
    token: 'tok en',
    appendToken: true,
    WebSocket: FakeSocket as any,
    fetch: async (input: RequestInfo) => {
      const body = JSON.parse(await (input as Request).text());
      posts.push(body);
      return answer(body);
    },
    Request,
    Headers
  } as any);
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

const RESULT = { status: 'ok', stdout: 'a\n', stderr: '', exit_code: 0, duration_ms: 12, truncated: false, cached: false };

const tick = () => new Promise(resolve => setTimeout(resolve, 0));

test('the socket URL is under the API with the token when the settings append it', () => {
  assert.equal(liveUrl(settings()), 'ws://127.0.0.1:8888/base/api/exec/v1/execute/ws?token=tok%20en');
  const plain = ServerConnection.makeSettings({ wsUrl: 'wss://hub/user/ann/', token: 't', appendToken: false } as any);
  assert.equal(liveUrl(plain), 'wss://hub/user/ann/api/exec/v1/execute/ws');
});

test('a live run sends the run with its exercise, hands over each event in order and resolves with the result', async () => {
  FakeSocket.refuse = false;
  const events: string[] = [];
  const run = new LiveRun({
    started: limit => events.push(`started ${limit}`),
    output: (stream, data) => events.push(`${stream} ${data}`),
    inputRequest: prompt => events.push(`input ${prompt}`),
    display: d => events.push(`display ${d.mime} ${d.data}`)
  }, settings());
  const done = run.start({ code: 'print(1)', exercise_id: 'ex-1' });
  const socket = FakeSocket.last!;
  socket.open();
  assert.deepEqual(socket.sent, [{ type: 'run', code: 'print(1)', exercise_id: 'ex-1' }]);
  socket.receive({ type: 'started', time_limit_s: 30 });
  socket.receive({ type: 'output', stream: 'stdout', data: 'a\n' });
  socket.receive({ type: 'input_request', prompt: 'Name? ' });
  assert.equal(run.sendStdin('Ann\n'), true);
  socket.receive({ type: 'output', stream: 'stderr', data: 'oops\n' });
  socket.receive({ type: 'display', mime: 'image/png', data: 'AAAA' });
  socket.receive({ type: 'result', ...RESULT, displays: [{ mime: 'image/png', data: 'AAAA' }] });
  const outcome = await done;
  assert.deepEqual(events, ['started 30', 'stdout a\n', 'input Name? ', 'stderr oops\n', 'display image/png AAAA']);
  assert.equal(outcome.streamed, true);
  assert.equal(outcome.result.status, 'ok');
  assert.equal((outcome.result as any).type, undefined);
  assert.deepEqual(socket.sent[1], { type: 'stdin', data: 'Ann\n' });
  assert.equal(socket.readyState, 3, 'the socket is closed after the result');
  assert.equal(run.running, false);
  assert.equal(run.sendEof(), false, 'nothing is sent after the end');
});

test('stop sends cancel (also when pressed before the socket opened) and the cancelled result ends the run', async () => {
  const run = new LiveRun({}, settings());
  const done = run.start({ code: 'while True: pass' });
  const socket = FakeSocket.last!;
  run.cancel();
  socket.open();
  assert.deepEqual(socket.sent.map(m => m.type), ['run', 'cancel']);
  run.cancel();
  socket.receive({ type: 'result', ...RESULT, status: 'cancelled', duration_ms: 900 });
  assert.equal((await done).result.status, 'cancelled');
});

test('end of input is sent as eof', async () => {
  const run = new LiveRun({}, settings());
  const done = run.start({ code: 'input()' });
  const socket = FakeSocket.last!;
  socket.open();
  run.sendEof();
  assert.deepEqual(socket.sent[1], { type: 'stdin', eof: true });
  socket.receive({ type: 'result', ...RESULT });
  await done;
});

test('a socket that cannot open falls back to POST execute and says why', async () => {
  FakeSocket.refuse = true;
  const posts: any[] = [];
  try {
    const reasons: string[] = [];
    const outcome = await new LiveRun({ fallback: r => reasons.push(r) }, settings(posts)).start({ code: 'print(1)', stdin: 'x' });
    assert.deepEqual(reasons, [outcome.fallbackReason]);
    assert.equal(outcome.streamed, false);
    assert.match(outcome.fallbackReason!, /did not accept a live connection/);
    assert.deepEqual(posts, [{ code: 'print(1)', stdin: 'x' }]);
    assert.equal(outcome.result.stdout, 'a\n');
  } finally {
    FakeSocket.refuse = false;
  }
});

test('the fallback drops exercise_id only when the server refuses that field', async () => {
  FakeSocket.refuse = true;
  const posts: any[] = [];
  const answer = (body: any) =>
    'exercise_id' in body ? json(400, { message: "unknown field 'exercise_id'; known fields: code" }) : json(200, RESULT);
  try {
    const outcome = await new LiveRun({}, settings(posts, answer)).start({ code: 'x', exercise_id: 'e' });
    assert.deepEqual(posts, [{ code: 'x', exercise_id: 'e' }, { code: 'x' }]);
    assert.equal(outcome.result.status, 'ok');
  } finally {
    FakeSocket.refuse = false;
  }
});

test('a refused run message fails the run with the server message; later errors are notes', async () => {
  let run = new LiveRun({}, settings());
  let done = run.start({ code: 'x', limits: { time_s: -1 } as any });
  let socket = FakeSocket.last!;
  socket.open();
  socket.receive({ type: 'error', message: 'limits.time_s must be positive' });
  await assert.rejects(done, /limits.time_s must be positive/);

  const notes: string[] = [];
  run = new LiveRun({ notice: m => notes.push(m) }, settings());
  done = run.start({ code: 'x' });
  socket = FakeSocket.last!;
  socket.open();
  socket.receive({ type: 'started', time_limit_s: 5 });
  socket.receive({ type: 'error', message: 'stdin: no run is waiting for input' });
  socket.receive({ type: 'result', ...RESULT });
  await done;
  assert.deepEqual(notes, ['stdin: no run is waiting for input']);

  // A refused stdin or cancel before the run started does not end the run.
  run = new LiveRun({ notice: m => notes.push(m) }, settings());
  done = run.start({ code: 'x' });
  socket = FakeSocket.last!;
  socket.open();
  socket.receive({ type: 'error', message: 'cancel: no run is in progress on this socket' });
  assert.equal(run.running, true);
  socket.receive({ type: 'result', ...RESULT });
  await done;
});

test('a result whose stream dropped events shows the result output in full', () => {
  const { v } = view();
  v.begin();
  v.output('stdout', 'partial');
  v.finish({ ...RESULT, stdout: 'complete\n', dropped: true } as any, true);
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'complete\n');
  assert.match(text(v.node.querySelector('.jp-ExecExt-note')), /faster than the page/);
});

test('a connection lost mid-run fails it with a readable message', async () => {
  const run = new LiveRun({}, settings());
  const done = run.start({ code: 'x' });
  const socket = FakeSocket.last!;
  socket.open();
  socket.receive({ type: 'started', time_limit_s: 5 });
  socket.close(1006);
  await assert.rejects(done, /connection to the server was lost.*stopped on the server/);
  await tick();
});

function view() {
  const calls: string[] = [];
  const v = new LiveView(doc, {
    stop: () => calls.push('stop'),
    sendLine: line => calls.push(`line ${JSON.stringify(line)}`),
    sendEof: () => calls.push('eof')
  });
  doc.body.replaceChildren(v.node);
  return { v, calls };
}

test('the box streams output as preformatted text, busy until the end, then one spoken summary', () => {
  const { v, calls } = view();
  v.begin();
  assert.equal(v.announcer.getAttribute('role'), 'status');
  assert.equal(v.announcer.getAttribute('aria-live'), 'polite');
  assert.equal(v.announcer.getAttribute('aria-busy'), 'true');
  assert.ok(!v.node.classList.contains('jp-ExecExt-run'), 'not marked finished while running');
  v.started(30);
  v.tick(3400);
  assert.equal(text(v.node.querySelector('.jp-ExecExt-facts')), 'elapsed 3 s of 30 s limit');
  v.output('stdout', 'line 1\n');
  v.output('stdout', '<b>line 2</b>\n');
  v.output('stderr', 'Traceback (most recent call last):\n  File "x"\nZeroDivisionError\n');
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'line 1\n<b>line 2</b>\n');
  assert.equal(v.node.querySelector('b'), null, 'output is never parsed as HTML');
  assert.equal(v.node.querySelector('.jp-ExecExt-stderr pre')!.tagName, 'PRE');
  assert.equal(v.stopButton.getAttribute('aria-label'), 'Stop the sandbox run');
  v.stopButton.click();
  assert.deepEqual(calls, ['stop']);
  v.finish({ ...RESULT, status: 'runtime_error', stdout: 'ignored', stderr: 'ignored', exit_code: 1, duration_ms: 8 }, true);
  assert.equal(v.announcer.textContent, 'Sandbox run: runtime error, 8 ms');
  assert.equal(v.announcer.getAttribute('aria-busy'), 'false');
  assert.equal(v.node.dataset.status, 'runtime_error');
  assert.ok(v.node.classList.contains('jp-ExecExt-run'));
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'line 1\n<b>line 2</b>\n', 'streamed output kept');
  assert.equal(v.node.querySelector('.jp-ExecExt-stop'), null, 'Stop is gone at the end');
  assert.match(text(v.node.querySelector('.jp-ExecExt-facts')), /8 ms · exit code 1/);
});

test('a run that was not streamed shows the result output and why it did not stream', () => {
  const { v } = view();
  v.begin();
  v.finish({ ...RESULT, stdout: 'out\n', stderr: 'err\n' }, false, 'the server did not accept a live connection');
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'out\n');
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stderr pre')), 'err\n');
  assert.match(text(v.node.querySelector('.jp-ExecExt-note')), /not streamed: the server did not accept a live connection/);
});

test('cancelled is labelled as stopped', () => {
  const { v } = view();
  v.begin();
  v.stopping();
  assert.equal(text(v.node.querySelector('.jp-ExecExt-badge')), 'stopping…');
  v.finish({ ...RESULT, status: 'cancelled', stdout: '', duration_ms: 950 }, true);
  assert.equal(text(v.node.querySelector('.jp-ExecExt-badge')), 'stopped');
  assert.equal(v.node.querySelector<HTMLElement>('.jp-ExecExt-badge')!.dataset.status, 'stopped');
  assert.equal(v.announcer.textContent, 'Sandbox run: stopped, 950 ms');
  assert.equal(spokenSummary({ status: 'timeout', duration_ms: 30001 }), 'Sandbox run: time limit reached, 30001 ms');
});

test('input: a labelled field with the prompt; Enter sends the line and keeps it in the transcript; Ctrl+D sends eof', () => {
  const { v, calls } = view();
  v.begin();
  v.output('stdout', 'Name? ');
  const field = v.askInput('Name? ');
  const label = v.node.querySelector(`label[for="${field.id}"]`);
  assert.equal(text(label), 'Name? ');
  assert.ok(field.getAttribute('aria-describedby'));
  field.value = 'Ann';
  field.form!.dispatchEvent(new dom.window.Event('submit', { cancelable: true }));
  assert.deepEqual(calls, ['line "Ann\\n"']);
  assert.equal(v.inputField, null, 'the field goes once answered');
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'Name? Ann\n');
  // Enter in the field sends the line (once).
  const second = v.askInput('Age? ');
  second.value = '7';
  const enter = new dom.window.KeyboardEvent('keydown', { key: 'Enter', cancelable: true });
  second.dispatchEvent(enter);
  assert.ok(enter.defaultPrevented);
  second.form!.dispatchEvent(new dom.window.Event('submit', { cancelable: true }));
  assert.deepEqual(calls, ['line "Ann\\n"', 'line "7\\n"']);
  assert.equal(text(v.node.querySelector('.jp-ExecExt-stdout pre')), 'Name? Ann\nAge? 7\n');
  const third = v.askInput('');
  assert.equal(text(v.node.querySelector(`label[for="${third.id}"]`)), 'Input:');
  third.dispatchEvent(new dom.window.KeyboardEvent('keydown', { key: 'd', ctrlKey: true, cancelable: true }));
  assert.deepEqual(calls.slice(-1), ['eof']);
  const fourth = v.askInput('more? ');
  (v.node.querySelector('.jp-ExecExt-eof') as HTMLButtonElement).click();
  assert.deepEqual(calls.slice(-1), ['eof']);
  assert.equal(fourth.isConnected, false);
});

test('figures render inline with alt text; anything but base64 PNG is refused', () => {
  const { v } = view();
  v.begin();
  v.display({ mime: 'image/png', data: 'iVBORw0KGgo=' });
  v.display({ mime: 'image/png', data: 'x" onerror="alert(1)' });
  v.display({ mime: 'text/html', data: 'PGI+' });
  const images = [...v.node.querySelectorAll('img')];
  assert.equal(images.length, 1);
  assert.equal(images[0].getAttribute('src'), 'data:image/png;base64,iVBORw0KGgo=');
  assert.match(images[0].getAttribute('alt')!, /Figure 1/);
  assert.equal(v.node.querySelectorAll('.jp-ExecExt-note').length, 2);
  // Figures already streamed are not added again from the result.
  v.finish({ ...RESULT, displays: [{ mime: 'image/png', data: 'iVBORw0KGgo=' }] } as any, true);
  assert.equal(v.node.querySelectorAll('img').length, 1);
});

test('figures of a result that did not stream are shown from the result', () => {
  const { v } = view();
  v.begin();
  v.finish({ ...RESULT, displays: [{ mime: 'image/png', data: 'AAAA' }, { mime: 'image/png', data: 'BBBB' }] } as any, false);
  assert.equal(v.node.querySelectorAll('img').length, 2);
});

test('a repeated policy violation message is shown once', () => {
  const { v } = view();
  v.begin();
  v.finish({
    ...RESULT, status: 'policy_violation', stdout: '', exit_code: null, duration_ms: 0,
    stderr: 'line 1: import of os is not allowed\nline 4: import of os is not allowed\nline 6: eval() is not allowed\n',
    message: 'line 1: import of os is not allowed'
  }, true);
  const messages = [...v.node.querySelectorAll('.jp-ExecExt-message')].map(n => n.textContent);
  assert.deepEqual(messages, ['import of os is not allowed (lines 1, 4)', 'eval() is not allowed (line 6)']);
  assert.ok(v.node.querySelector<HTMLElement>('.jp-ExecExt-stderr')!.hidden, 'not repeated as stderr');
  assert.deepEqual(policyMessages('line 2: x\nplain\nplain\n'), ['x (line 2)', 'plain']);
});

test('a failed request says so, and the spoken summary names it', () => {
  const { v } = view();
  v.begin();
  v.fail('Too many runs at once: try again in 2 s.');
  assert.equal(v.node.dataset.status, 'request_error');
  assert.equal(text(v.node.querySelector('.jp-ExecExt-message')), 'Too many runs at once: try again in 2 s.');
  assert.equal(v.announcer.textContent, 'Sandbox run failed: Too many runs at once: try again in 2 s.');
});

test('elapsed time reads well below one second and without a limit', () => {
  assert.equal(elapsedText(400, 30), 'elapsed 0.4 s of 30 s limit');
  assert.equal(elapsedText(12_900, null), 'elapsed 12 s');
});
