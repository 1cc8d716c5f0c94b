/**
 * DOM for results: a sandbox run under its cell, a submission's results panel, and the status
 * bar text. Pure functions of the API answers (given a `Document`), so they are unit-tested
 * without JupyterLab. Text goes in through `textContent` only: output is never parsed as HTML.
 */
import { IDockerStatus, IExecutionResult, ISubmissionResult, ITestResult, RunStatus, TestStatus } from './types.js';

/** Words a student understands for each run status (the type makes the table complete). */
const RUN_STATUS_TEXT: Record<RunStatus, string> = {
  ok: 'ok',
  runtime_error: 'runtime error',
  syntax_error: 'syntax error',
  timeout: 'time limit reached',
  memory_limit: 'memory limit reached',
  output_limit: 'output limit reached',
  policy_violation: 'not allowed in this exercise',
  internal_error: 'sandbox error',
  cancelled: 'stopped'
};

/** A status a newer server may add reads as its own words. */
export function runStatusText(status: RunStatus): string {
  return RUN_STATUS_TEXT[status] ?? String(status).replace(/_/g, ' ');
}

export function el(doc: Document, tag: string, className: string, text?: string): HTMLElement {
  const node = doc.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

let nextId = 0;
/** A document-unique id, for `aria-labelledby` and friends. */
export function uniqueId(doc: Document, prefix: string): string {
  let id: string;
  do {
    id = `${prefix}-${++nextId}`;
  } while (doc.getElementById(id));
  return id;
}

/** Text for screen readers only (a separator between spans that are read as one line). */
function srOnly(doc: Document, text: string): HTMLElement {
  return el(doc, 'span', 'jp-ExecExt-srOnly', text);
}

/**
 * Output as preformatted text with its line breaks, labelled: a `figure` whose `figcaption` is
 * the label, so the label is tied to its block for assistive technology.
 */
function streamBlock(doc: Document, label: string, text: string, kind: string): HTMLElement {
  const block = el(doc, 'figure', `jp-ExecExt-stream jp-ExecExt-${kind}`);
  block.appendChild(el(doc, 'figcaption', 'jp-ExecExt-streamLabel', label));
  block.appendChild(el(doc, 'pre', 'jp-ExecExt-pre', text));
  return block;
}

/** Lines of a unified diff (`--- expected` / `+++ actual` / `@@`): marked per line, not colour alone. */
function isUnifiedDiff(text: string): boolean {
  return /^--- .*\n\+\+\+ /m.test(text) || /^@@ .* @@/m.test(text);
}

/**
 * A message: one line as a paragraph; several lines (a traceback, a diff) as preformatted text
 * with its line breaks, a unified diff with its removed and added lines marked.
 */
export function renderMessage(doc: Document, message: string): HTMLElement {
  if (!message.includes('\n')) {
    return el(doc, 'div', 'jp-ExecExt-message', message);
  }
  const pre = el(doc, 'pre', 'jp-ExecExt-message jp-ExecExt-pre');
  if (!isUnifiedDiff(message)) {
    pre.textContent = message;
    return pre;
  }
  pre.classList.add('jp-ExecExt-diff');
  for (const line of message.replace(/\n$/, '').split('\n')) {
    let kind = 'context';
    if (line.startsWith('+++') || line.startsWith('---')) {
      kind = 'file';
    } else if (line.startsWith('@@')) {
      kind = 'hunk';
    } else if (line.startsWith('+')) {
      kind = 'added';
    } else if (line.startsWith('-')) {
      kind = 'removed';
    }
    const span = el(doc, 'span', `jp-ExecExt-diffLine jp-ExecExt-diff-${kind}`, `${line}\n`);
    pre.appendChild(span);
  }
  return pre;
}

/** Index of the first line where `a` and `b` differ (-1 when equal). */
export function firstDifferentLine(a: string[], b: string[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return i;
    }
  }
  return -1;
}

function splitLines(text: string): string[] {
  return text.replace(/\n$/, '').split('\n');
}

/** One side of a comparison: its lines, the first differing one highlighted (a `mark`). */
function compareSide(doc: Document, label: string, kind: string, lines: string[], diff: number): HTMLElement {
  const block = el(doc, 'figure', `jp-ExecExt-stream jp-ExecExt-${kind}`);
  block.appendChild(el(doc, 'figcaption', 'jp-ExecExt-streamLabel', label));
  const pre = el(doc, 'pre', 'jp-ExecExt-pre');
  lines.forEach((line, i) => {
    if (i === diff) {
      pre.appendChild(el(doc, 'mark', 'jp-ExecExt-firstDiff', line));
      pre.appendChild(doc.createTextNode('\n'));
    } else {
      pre.appendChild(doc.createTextNode(`${line}\n`));
    }
  });
  if (diff >= lines.length) {
    pre.appendChild(el(doc, 'mark', 'jp-ExecExt-firstDiff', '(no more lines)'));
  }
  block.appendChild(pre);
  return block;
}

/**
 * Expected vs actual output. One-line outputs stack; a multi-line mismatch sits side by side, with
 * the first differing line highlighted on both sides and named in words.
 */
export function renderComparison(doc: Document, expected: string, actual: string): HTMLElement {
  const want = splitLines(expected);
  const got = splitLines(actual);
  const multi = want.length > 1 || got.length > 1;
  const root = el(doc, 'div', `jp-ExecExt-compare${multi ? ' jp-mod-sideBySide' : ''}`);
  if (!multi) {
    root.appendChild(streamBlock(doc, 'expected', expected, 'expected'));
    root.appendChild(streamBlock(doc, 'actual', actual, 'actual'));
    return root;
  }
  const diff = firstDifferentLine(want, got);
  if (diff >= 0) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-diffNote', `First difference on line ${diff + 1} (highlighted).`));
  }
  const sides = el(doc, 'div', 'jp-ExecExt-sides');
  sides.appendChild(compareSide(doc, 'expected', 'expected', want, diff));
  sides.appendChild(compareSide(doc, 'actual', 'actual', got, diff));
  root.appendChild(sides);
  return root;
}

/**
 * The header every sandbox box starts with, so it is never mistaken for kernel output: a heading
 * (its id labels the box) and a status pill.
 */
function header(doc: Document, title: string, badgeText: string, badgeKind: string, level = 3): HTMLElement {
  const head = el(doc, 'div', 'jp-ExecExt-header');
  const heading = el(doc, `h${level}`, 'jp-ExecExt-title', title);
  heading.id = uniqueId(doc, 'jp-ExecExt-title');
  head.appendChild(heading);
  const badge = el(doc, 'span', `jp-ExecExt-badge jp-ExecExt-badge-${badgeKind}`, badgeText);
  badge.dataset.status = badgeKind;
  head.appendChild(srOnly(doc, ': '));
  head.appendChild(badge);
  return head;
}

/** A sandbox run's result: status, duration, message, notes, stdout and stderr. */
export function renderExecution(doc: Document, result: IExecutionResult): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-run');
  root.dataset.status = result.status;
  root.setAttribute('role', 'group');
  const head = header(doc, 'Sandbox output', runStatusText(result.status), result.status === 'ok' ? 'ok' : 'error');
  root.setAttribute('aria-labelledby', head.querySelector('.jp-ExecExt-title')!.id);
  const facts = [`${result.duration_ms} ms`];
  if (result.exit_code !== null && result.exit_code !== undefined) {
    facts.push(`exit code ${result.exit_code}`);
  }
  if (result.cached) {
    facts.push('from cache');
  }
  head.appendChild(srOnly(doc, ', '));
  head.appendChild(el(doc, 'span', 'jp-ExecExt-facts', facts.join(' · ')));
  root.appendChild(head);
  if (result.message) {
    root.appendChild(renderMessage(doc, result.message));
  }
  for (const note of result.notes ?? []) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-note', note));
  }
  if (result.stdout) {
    root.appendChild(streamBlock(doc, 'stdout', result.stdout, 'stdout'));
  }
  if (result.stderr) {
    root.appendChild(streamBlock(doc, 'stderr', result.stderr, 'stderr'));
  }
  if (!result.stdout && !result.stderr) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-empty', '(no output)'));
  }
  if (result.truncated) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-note', 'Output was cut at the sandbox output limit.'));
  }
  return root;
}

/** A request that failed before anything ran (503, 429, network): its message, marked as such. */
export function renderError(doc: Document, title: string, message: string, level = 3): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-failure');
  root.dataset.status = 'request_error';
  root.appendChild(header(doc, title, 'failed', 'error', level));
  root.appendChild(renderMessage(doc, message));
  return root;
}

/** A box saying a request is on its way (the busy state under the cell or in the panel). */
export function renderPending(doc: Document, title: string, what: string, level = 3): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-pending');
  root.dataset.status = 'pending';
  root.appendChild(header(doc, title, what, 'pending', level));
  return root;
}

const TEST_STATUS_TEXT: Record<TestStatus, string> = {
  passed: 'passed',
  failed: 'failed',
  error: 'error',
  timeout: 'timed out',
  memory_limit: 'memory limit'
};

/**
 * One test's row: mark, name, status and points; for a failing test with `details`, its message
 * and expected vs actual output.
 */
export function renderTest(doc: Document, test: ITestResult, details: boolean, seeAbove?: string): HTMLElement {
  const ok = test.status === 'passed';
  const item = el(doc, 'li', `jp-ExecExt-test ${ok ? 'jp-mod-passed' : 'jp-mod-failed'}`);
  item.dataset.status = test.status;
  const line = el(doc, 'div', 'jp-ExecExt-testLine');
  // The glyph repeats the status in words: hidden from screen readers, which read the words.
  const mark = el(doc, 'span', 'jp-ExecExt-testMark', ok ? '✔' : '✘');
  mark.setAttribute('aria-hidden', 'true');
  line.appendChild(mark);
  line.appendChild(el(doc, 'span', 'jp-ExecExt-testName', test.hidden ? `${test.name} (hidden)` : test.name));
  line.appendChild(srOnly(doc, ': '));
  line.appendChild(el(doc, 'span', 'jp-ExecExt-testStatus', TEST_STATUS_TEXT[test.status] ?? test.status));
  line.appendChild(srOnly(doc, ', '));
  line.appendChild(el(doc, 'span', 'jp-ExecExt-points', `${test.points} / ${test.max_points} pt`));
  item.appendChild(line);
  if (!ok && details) {
    const hasExpected = test.expected !== undefined && test.expected !== null;
    const hasActual = test.actual !== undefined && test.actual !== null;
    if (seeAbove) {
      item.appendChild(el(doc, 'div', 'jp-ExecExt-message', seeAbove));
    } else if (test.message) {
      // With expected and actual side by side below, a diff in the message says it twice: its
      // lead ("output differs …") is enough.
      const diffAt = hasExpected && hasActual && isUnifiedDiff(test.message) ? test.message.search(/^--- /m) : -1;
      const message = diffAt > 0 ? test.message.slice(0, diffAt).trim() : test.message;
      item.appendChild(renderMessage(doc, message));
    }
    if (hasExpected && hasActual) {
      item.appendChild(renderComparison(doc, test.expected!, test.actual!));
    } else if (hasExpected) {
      item.appendChild(streamBlock(doc, 'expected', test.expected!, 'expected'));
    } else if (hasActual) {
      item.appendChild(streamBlock(doc, 'actual', test.actual!, 'actual'));
    }
  }
  return item;
}

/** The one sentence a screen reader says when a run ends: "Sandbox run: runtime error, 8 ms". */
export function executionSummary(result: IExecutionResult): string {
  return `Sandbox run: ${runStatusText(result.status)}, ${result.duration_ms} ms`;
}

/** The one sentence said when results arrive: "Results: 1 of 6 tests pass, score 1 of 7". */
export function submissionSummary(result: ISubmissionResult): string {
  const passed = result.tests.filter(t => t.status === 'passed').length;
  return `Results: ${passed} of ${result.tests.length} test${result.tests.length === 1 ? '' : 's'} pass, score ${result.score} of ${result.max_score}`;
}

/**
 * A submission's results: the score, which cells were graded, then one row per test (expected vs
 * actual when shown).
 *
 * @param graded the graded cells as people name them (`describeCell`), in notebook order
 */
export function renderSubmission(doc: Document, result: ISubmissionResult, graded?: string[]): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-submission');
  const passed = result.tests.filter(t => t.status === 'passed').length;
  const full = result.score === result.max_score && result.max_score > 0;
  root.dataset.status = full ? 'full' : 'partial';
  root.appendChild(
    header(
      doc,
      `Results: ${result.exercise_id}`,
      full ? 'all tests pass' : `${passed} of ${result.tests.length} tests pass`,
      full ? 'ok' : 'error',
      2
    )
  );
  const score = el(doc, 'div', 'jp-ExecExt-score', `Score: ${result.score} / ${result.max_score}`);
  score.dataset.score = String(result.score);
  score.dataset.maxScore = String(result.max_score);
  root.appendChild(score);
  if (graded !== undefined) {
    const what = graded.length
      ? `Graded ${graded.length === 1 ? 'cell' : `${graded.length} cells`}: ${graded.join(', ')} (marked “graded” in the notebook)`
      : 'No code cell was graded: write your code in a code cell of the notebook.';
    root.appendChild(el(doc, 'div', 'jp-ExecExt-gradedCells', what));
  }
  // A policy violation stops the code before any test: its message (every violation, from
  // stderr) is shown once here, and the tests that did not run point to it.
  const policy = result.status === 'policy_violation';
  const message = policy ? uniqueLines(result.stderr || result.message || '') : result.message;
  if (message) {
    root.appendChild(renderMessage(doc, message));
  }
  root.appendChild(el(doc, 'h3', 'jp-ExecExt-testsHeading', 'Tests'));
  const list = el(doc, 'ul', 'jp-ExecExt-tests');
  // `list-style: none` drops the list role in Safari/VoiceOver: say it explicitly.
  list.setAttribute('role', 'list');
  for (const test of result.tests) {
    const repeats =
      !!result.message && !!test.message && test.message !== result.message && test.message.includes(result.message);
    // Hidden tests carry only their name and outcome; showing anything else would leak them.
    list.appendChild(
      renderTest(
        doc,
        test,
        !test.hidden,
        repeats ? 'not run: your code stopped before the tests (see the message above)' : undefined
      )
    );
  }
  root.appendChild(list);
  if (result.stderr && !policy) {
    root.appendChild(streamBlock(doc, 'stderr of your code', result.stderr, 'stderr'));
  }
  return root;
}

/** The distinct lines of `text`, in order (a repeated message once). */
export function uniqueLines(text: string): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() && !seen.has(line)) {
      seen.add(line);
      lines.push(line);
    }
  }
  return lines.join('\n');
}

/** Executor state for the status bar. */
export type SandboxState = 'ready' | 'busy' | 'unavailable' | 'unknown';

/** Status bar words for the `reason` of a failed status request (the server names the cause). */
const UNAVAILABLE_TEXT: Record<string, string> = {
  service_unreachable: 'Sandbox: service unreachable',
  service_stopping: 'Sandbox: service restarting',
  service_timeout: 'Sandbox: service not answering'
};

export function describeDockerStatus(
  status: IDockerStatus | null,
  error?: string,
  reason?: string | null
): { state: SandboxState; text: string; title: string } {
  if (status === null) {
    const text = reason ? UNAVAILABLE_TEXT[reason] : undefined;
    if (text) {
      return { state: 'unavailable', text, title: error ?? text };
    }
    return { state: 'unknown', text: 'Sandbox: ?', title: error ?? 'Sandbox status not known yet' };
  }
  const docker = status.docker;
  if (!docker.enabled) {
    return { state: 'unavailable', text: 'Sandbox: off', title: 'The sandbox is turned off on this server' };
  }
  if (!docker.reachable) {
    return {
      state: 'unavailable',
      text: 'Sandbox: Docker unavailable',
      title: docker.error || 'Docker is not running'
    };
  }
  if (!docker.image_present) {
    return { state: 'unavailable', text: 'Sandbox: image missing', title: `Executor image ${docker.image} is missing` };
  }
  const inFlight = status.runs.in_flight + status.runs.queued;
  if (inFlight > 0) {
    return {
      state: 'busy',
      text: `Sandbox: ${inFlight} run${inFlight === 1 ? '' : 's'} in flight`,
      title: `${status.runs.in_flight} running, ${status.runs.queued} queued`
    };
  }
  return { state: 'ready', text: 'Sandbox: ready', title: 'Docker is running and the executor image is present' };
}
