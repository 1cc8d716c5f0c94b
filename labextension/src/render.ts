/**
 * DOM for results: a sandbox run under its cell, a submission's results panel, and the status
 * bar text. Pure functions of the API answers (given a `Document`), so they are unit-tested
 * without JupyterLab. Text goes in through `textContent` only: output is never parsed as HTML.
 */
import { IDockerStatus, IExecutionResult, ISubmissionResult, ITestResult } from './types.js';

/** Words a student understands for each run status. */
const RUN_STATUS_TEXT: Record<string, string> = {
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

export function runStatusText(status: string): string {
  return RUN_STATUS_TEXT[status] ?? status.replace(/_/g, ' ');
}

export function el(
  doc: Document,
  tag: string,
  className: string,
  text?: string
): HTMLElement {
  const node = doc.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function streamBlock(doc: Document, label: string, text: string, kind: string): HTMLElement {
  const block = el(doc, 'div', `jp-ExecExt-stream jp-ExecExt-${kind}`);
  block.appendChild(el(doc, 'div', 'jp-ExecExt-streamLabel', label));
  block.appendChild(el(doc, 'pre', 'jp-ExecExt-pre', text));
  return block;
}

/** The header every sandbox box starts with, so it is never mistaken for kernel output. */
function header(doc: Document, title: string, badgeText: string, badgeKind: string): HTMLElement {
  const head = el(doc, 'div', 'jp-ExecExt-header');
  head.appendChild(el(doc, 'span', 'jp-ExecExt-title', title));
  const badge = el(doc, 'span', `jp-ExecExt-badge jp-ExecExt-badge-${badgeKind}`, badgeText);
  badge.dataset.status = badgeKind;
  head.appendChild(badge);
  return head;
}

/** A sandbox run's result: status, duration, message, notes, stdout and stderr. */
export function renderExecution(doc: Document, result: IExecutionResult): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-run');
  root.dataset.status = result.status;
  const head = header(doc, 'Sandbox output', runStatusText(result.status), result.status === 'ok' ? 'ok' : 'error');
  const facts = [`${result.duration_ms} ms`];
  if (result.exit_code !== null && result.exit_code !== undefined) {
    facts.push(`exit code ${result.exit_code}`);
  }
  if (result.cached) {
    facts.push('from cache');
  }
  head.appendChild(el(doc, 'span', 'jp-ExecExt-facts', facts.join(' · ')));
  root.appendChild(head);
  if (result.message) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-message', result.message));
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
export function renderError(doc: Document, title: string, message: string): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-failure');
  root.dataset.status = 'request_error';
  root.appendChild(header(doc, title, 'failed', 'error'));
  root.appendChild(el(doc, 'div', 'jp-ExecExt-message', message));
  return root;
}

/** A box saying a request is on its way (the busy state under the cell or in the panel). */
export function renderPending(doc: Document, title: string, what: string): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-result jp-ExecExt-pending');
  root.dataset.status = 'pending';
  root.appendChild(header(doc, title, what, 'pending'));
  return root;
}

const TEST_STATUS_TEXT: Record<string, string> = {
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
export function renderTest(doc: Document, test: ITestResult, details: boolean): HTMLElement {
  const ok = test.status === 'passed';
  const item = el(doc, 'li', `jp-ExecExt-test ${ok ? 'jp-mod-passed' : 'jp-mod-failed'}`);
  item.dataset.status = test.status;
  const line = el(doc, 'div', 'jp-ExecExt-testLine');
  line.appendChild(el(doc, 'span', 'jp-ExecExt-testMark', ok ? '✔' : '✘'));
  line.appendChild(el(doc, 'span', 'jp-ExecExt-testName', test.hidden ? `${test.name} (hidden)` : test.name));
  line.appendChild(el(doc, 'span', 'jp-ExecExt-testStatus', TEST_STATUS_TEXT[test.status] ?? test.status));
  line.appendChild(el(doc, 'span', 'jp-ExecExt-points', `${test.points} / ${test.max_points} pt`));
  item.appendChild(line);
  if (!ok && details) {
    if (test.message) {
      item.appendChild(el(doc, 'div', 'jp-ExecExt-message', test.message));
    }
    if (test.expected !== undefined && test.expected !== null) {
      item.appendChild(streamBlock(doc, 'expected', test.expected, 'expected'));
    }
    if (test.actual !== undefined && test.actual !== null) {
      item.appendChild(streamBlock(doc, 'actual', test.actual, 'actual'));
    }
  }
  return item;
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
  root.appendChild(header(doc, `Results: ${result.exercise_id}`, full ? 'all tests pass' : `${passed} of ${result.tests.length} tests pass`, full ? 'ok' : 'error'));
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
  if (result.message) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-message', result.message));
  }
  const list = el(doc, 'ul', 'jp-ExecExt-tests');
  for (const test of result.tests) {
    // Hidden tests carry only their name and outcome; showing anything else would leak them.
    list.appendChild(renderTest(doc, test, !test.hidden));
  }
  root.appendChild(list);
  if (result.stderr) {
    root.appendChild(streamBlock(doc, 'stderr of your code', result.stderr, 'stderr'));
  }
  return root;
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
    return { state: 'unavailable', text: 'Sandbox: Docker unavailable', title: docker.error || 'Docker is not running' };
  }
  if (!docker.image_present) {
    return { state: 'unavailable', text: 'Sandbox: image missing', title: `Executor image ${docker.image} is missing` };
  }
  const inFlight = status.runs.in_flight + status.runs.queued;
  if (inFlight > 0) {
    return { state: 'busy', text: `Sandbox: ${inFlight} run${inFlight === 1 ? '' : 's'} in flight`, title: `${status.runs.in_flight} running, ${status.runs.queued} queued` };
  }
  return { state: 'ready', text: 'Sandbox: ready', title: 'Docker is running and the executor image is present' };
}
