import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';

import { describeDockerStatus, renderError, renderExecution, renderSubmission } from '../src/render';
import { collectSubmission, describeCell, exerciseId } from '../src/notebook';

const doc = new JSDOM('<!doctype html><body></body>').window.document;
const text = (node: Element | null) => (node ? node.textContent ?? '' : '');

test('a run shows it is sandbox output, its status, output and message', () => {
  const node = renderExecution(doc, {
    status: 'runtime_error', stdout: 'before\n', stderr: 'Traceback …\nZeroDivisionError: division by zero\n',
    exit_code: 1, duration_ms: 42, truncated: false, cached: false, message: 'the program raised ZeroDivisionError'
  });
  assert.equal(text(node.querySelector('.jp-ExecExt-title')), 'Sandbox output');
  assert.equal(text(node.querySelector('.jp-ExecExt-badge')), 'runtime error');
  assert.equal(node.dataset.status, 'runtime_error');
  assert.equal(text(node.querySelector('.jp-ExecExt-stdout pre')), 'before\n');
  assert.match(text(node.querySelector('.jp-ExecExt-stderr pre')), /ZeroDivisionError/);
  assert.equal(text(node.querySelector('.jp-ExecExt-message')), 'the program raised ZeroDivisionError');
  assert.match(text(node.querySelector('.jp-ExecExt-facts')), /42 ms · exit code 1/);
});

test('output is shown as text, never parsed as HTML', () => {
  const node = renderExecution(doc, {
    status: 'ok', stdout: '<img src=x onerror=alert(1)>', stderr: '', exit_code: 0,
    duration_ms: 1, truncated: false, cached: true
  });
  assert.equal(node.querySelector('img'), null);
  assert.equal(text(node.querySelector('.jp-ExecExt-stdout pre')), '<img src=x onerror=alert(1)>');
  assert.match(text(node.querySelector('.jp-ExecExt-facts')), /from cache/);
});

test('a failed request shows its message', () => {
  const node = renderError(doc, 'Sandbox output', 'Sandbox unavailable: Docker is not running');
  assert.equal(text(node.querySelector('.jp-ExecExt-message')), 'Sandbox unavailable: Docker is not running');
});

test('a submission lists each test with points, expected vs actual for visible ones, and the score', () => {
  const node = renderSubmission(doc, {
    exercise_id: 'add', status: 'failed', score: 3, max_score: 7, stdout: '', stderr: '', duration_ms: 90,
    tests: [
      { name: 'small numbers', status: 'passed', points: 1, max_points: 1, hidden: false, message: '' },
      { name: 'negatives', status: 'failed', points: 0, max_points: 2, hidden: false,
        message: 'wrong output', expected: '-5', actual: '5' },
      { name: 'big numbers', status: 'failed', points: 0, max_points: 2, hidden: true, message: '' },
      { name: 'floats', status: 'passed', points: 2, max_points: 2, hidden: true }
    ]
  });
  assert.equal(text(node.querySelector('.jp-ExecExt-score')), 'Score: 3 / 7');
  assert.equal(node.dataset.status, 'partial');
  const rows = [...node.querySelectorAll('.jp-ExecExt-test')];
  assert.deepEqual(rows.map(r => (r as HTMLElement).dataset.status), ['passed', 'failed', 'failed', 'passed']);
  assert.equal(text(rows[1].querySelector('.jp-ExecExt-points')), '0 / 2 pt');
  assert.equal(text(rows[1].querySelector('.jp-ExecExt-expected pre')), '-5');
  assert.equal(text(rows[1].querySelector('.jp-ExecExt-actual pre')), '5');
  assert.match(text(rows[2]), /big numbers \(hidden\)/);
  assert.equal(rows[2].querySelector('.jp-ExecExt-expected'), null);
  assert.equal(text(node.querySelector('.jp-ExecExt-badge')), '2 of 4 tests pass');
});

test('full marks are shown as such', () => {
  const node = renderSubmission(doc, {
    exercise_id: 'add', status: 'passed', score: 7, max_score: 7, stdout: '', stderr: '', duration_ms: 90,
    tests: [{ name: 't', status: 'passed', points: 7, max_points: 7, hidden: false }]
  });
  assert.equal(node.dataset.status, 'full');
  assert.equal(text(node.querySelector('.jp-ExecExt-badge')), 'all tests pass');
});

test('the status item reads ready, Docker unavailable, or runs in flight', () => {
  const base = { docker: { enabled: true, reachable: true, image_present: true, image: 'img' }, runs: { in_flight: 0, queued: 0 } };
  assert.equal(describeDockerStatus(base).text, 'Sandbox: ready');
  assert.equal(describeDockerStatus({ ...base, docker: { ...base.docker, reachable: false, error: 'Docker not available' } }).text, 'Sandbox: Docker unavailable');
  assert.equal(describeDockerStatus({ ...base, docker: { ...base.docker, image_present: false } }).text, 'Sandbox: image missing');
  assert.equal(describeDockerStatus({ ...base, runs: { in_flight: 2, queued: 1 } }).text, 'Sandbox: 3 runs in flight');
  assert.equal(describeDockerStatus(null, 'Cannot reach').state, 'unknown');
  // The status request itself failed: the server's reason names what is away.
  const away = describeDockerStatus(null, 'Sandbox unavailable: the code execution service cannot be reached', 'service_unreachable');
  assert.deepEqual(away, { state: 'unavailable', text: 'Sandbox: service unreachable', title: 'Sandbox unavailable: the code execution service cannot be reached' });
  assert.equal(describeDockerStatus(null, 'x', 'service_stopping').text, 'Sandbox: service restarting');
});

function notebook(meta: any, cells: Array<[string, string | undefined, string, boolean?]>) {
  return {
    getMetadata: (key: string) => (key === 'jupyter_exec' ? meta : undefined),
    cells: cells.map(([type, role, source, readOnly]) => ({
      type,
      getMetadata: (key: string) =>
        key === 'jupyter_exec' && role ? { role } : key === 'editable' && readOnly ? false : undefined,
      sharedModel: { getSource: () => source }
    }))
  };
}

test('Submit sends every code cell the student can edit, in notebook order', () => {
  const nb = notebook({ exercise_id: 'add', student_copy: true }, [
    ['markdown', 'prompt', 'Write add'],
    ['code', 'prompt', 'print("an example the prompt runs")'],
    ['code', undefined, 'def helper(x):\n    return x'],
    ['code', 'student', 'def add(a, b):\n    return helper(a) + b'],
    ['code', undefined, 'GIVEN = 1', true],
    ['markdown', undefined, 'notes'],
    ['code', 'student', 'X = 1']
  ]);
  assert.equal(exerciseId(nb), 'add');
  assert.deepEqual(collectSubmission(nb), {
    code: 'def helper(x):\n    return x\n\ndef add(a, b):\n    return helper(a) + b\n\nX = 1',
    cells: [2, 3, 6]
  });
  assert.equal(exerciseId(notebook(undefined, [])), null);
});

test('solution cells are graded in instructor mode only', () => {
  const teacher = notebook({ exercise_id: 'add' }, [
    ['code', 'starter', 'S'], ['code', 'solution', 'R'], ['code', undefined, 'H']
  ]);
  // A student who somehow has the instructor's notebook: the starter is graded, never the reference.
  assert.deepEqual(collectSubmission(teacher), { code: 'S\n\nH', cells: [0, 2] });
  assert.deepEqual(collectSubmission(teacher, true), { code: 'R\n\nH', cells: [1, 2] });
  // In instructor mode a notebook without a reference sends its starter.
  assert.deepEqual(collectSubmission(notebook({ exercise_id: 'add' }, [['code', 'starter', 'S']]), true).cells, [0]);
});

test('a graded cell is named by its number and first line', () => {
  assert.equal(describeCell(1, '\n  def add(a, b):\n    pass'), 'cell 2 (def add(a, b):)');
  assert.equal(describeCell(0, ''), 'cell 1 (empty)');
  assert.equal(describeCell(4, 'x = "' + 'a'.repeat(60) + '"'), 'cell 5 (x = "' + 'a'.repeat(34) + '…)');
});

test('the results name the graded cells', () => {
  const result = { exercise_id: 'add', status: 'ok', score: 0, max_score: 1, stdout: '', stderr: '', duration_ms: 1,
                   tests: [{ name: 't', status: 'failed', points: 0, max_points: 1, hidden: true }] };
  const node = renderSubmission(doc, result, ['cell 2 (def add(a, b):)', 'cell 4 (X = 1)']);
  assert.equal(text(node.querySelector('.jp-ExecExt-gradedCells')),
    'Graded 2 cells: cell 2 (def add(a, b):), cell 4 (X = 1) (marked “graded” in the notebook)');
  assert.match(text(renderSubmission(doc, result, []).querySelector('.jp-ExecExt-gradedCells')), /No code cell was graded/);
  assert.equal(renderSubmission(doc, result).querySelector('.jp-ExecExt-gradedCells'), null);
});
