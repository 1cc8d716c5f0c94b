import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';

import {
  describeDockerStatus, executionSummary, firstDifferentLine, renderComparison, renderError, renderExecution,
  renderMessage, renderSubmission, submissionSummary, uniqueLines
} from '../src/render';
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

test('titles are headings, glyphs are hidden from screen readers, tests are a list', () => {
  const node = renderSubmission(doc, {
    exercise_id: 'add', status: 'failed', score: 1, max_score: 3, stdout: '', stderr: '', duration_ms: 9,
    tests: [
      { name: 'a', status: 'passed', points: 1, max_points: 1, hidden: false },
      { name: 'b', status: 'failed', points: 0, max_points: 2, hidden: false, message: 'wrong output', expected: '1', actual: '2' }
    ]
  });
  const heading = node.querySelector('h2.jp-ExecExt-title') as HTMLElement;
  assert.equal(text(heading), 'Results: add');
  assert.ok(heading.id, 'the title has an id for aria-labelledby');
  assert.equal(node.querySelector('ul.jp-ExecExt-tests')!.getAttribute('role'), 'list');
  for (const mark of node.querySelectorAll('.jp-ExecExt-testMark')) {
    assert.equal(mark.getAttribute('aria-hidden'), 'true');
  }
  // Read aloud, a row is "b: failed, 0 / 2 pt", not one run-on string.
  const line = node.querySelectorAll('.jp-ExecExt-testLine')[1];
  const spoken = [...line.childNodes].filter(n => (n as Element).getAttribute('aria-hidden') !== 'true').map(n => n.textContent).join('');
  assert.equal(spoken, 'b: failed, 0 / 2 pt');
  // Expected and actual are figures captioned by their label.
  const figures = [...node.querySelectorAll('figure')];
  assert.deepEqual(figures.map(f => text(f.querySelector('figcaption'))), ['expected', 'actual']);
  assert.equal(text(figures[0].querySelector('pre')), '1');
});

test('one short summary per run and per submission, for the live region', () => {
  assert.equal(executionSummary({ status: 'runtime_error', stdout: '', stderr: '', exit_code: 1, duration_ms: 8, truncated: false, cached: false }),
    'Sandbox run: runtime error, 8 ms');
  assert.equal(submissionSummary({
    exercise_id: 'x', status: 'failed', score: 1, max_score: 7, stdout: '', stderr: '', duration_ms: 1,
    tests: [0, 1, 2, 3, 4, 5].map(i => ({ name: `t${i}`, status: i === 0 ? 'passed' : 'failed', points: 0, max_points: 1, hidden: false }))
  }), 'Results: 1 of 6 tests pass, score 1 of 7');
});

test('a multi-line mismatch sits side by side with the first differing line highlighted', () => {
  const expected = '1\n2\nFizz\n4\nBuzz\n';
  const actual = '1\n2\nFizz\n4\nFizz\n';
  const node = renderComparison(doc, expected, actual);
  assert.ok(node.classList.contains('jp-mod-sideBySide'));
  assert.equal(text(node.querySelector('.jp-ExecExt-diffNote')), 'First difference on line 5 (highlighted).');
  const marks = [...node.querySelectorAll('mark.jp-ExecExt-firstDiff')].map(m => text(m));
  assert.deepEqual(marks, ['Buzz', 'Fizz']);
  // The blocks keep their line breaks.
  assert.equal(text(node.querySelector('.jp-ExecExt-expected pre')), expected);
  assert.equal(text(node.querySelector('.jp-ExecExt-actual pre')), actual);
  // A shorter actual output: the missing line is named.
  const short = renderComparison(doc, 'a\nb\n', 'a\n');
  assert.equal(text(short.querySelector('.jp-ExecExt-actual mark')), '(no more lines)');
  assert.equal(firstDifferentLine(['a'], ['a']), -1);
});

test('tracebacks and unified diffs keep their line breaks, diff lines are marked', () => {
  const diff = '--- expected\n+++ actual\n@@ -13,3 +13,3 @@\n 13\n-FizzBuzz\n+Fizz\n';
  const node = renderMessage(doc, diff);
  assert.equal(node.tagName, 'PRE');
  assert.equal(text(node), diff);
  assert.deepEqual([...node.querySelectorAll('.jp-ExecExt-diff-removed')].map(n => text(n)), ['-FizzBuzz\n']);
  assert.deepEqual([...node.querySelectorAll('.jp-ExecExt-diff-added')].map(n => text(n)), ['+Fizz\n']);
  const traceback = renderMessage(doc, 'Traceback (most recent call last):\n  File "<x>", line 1\nZeroDivisionError');
  assert.equal(traceback.tagName, 'PRE');
  assert.equal(traceback.querySelector('.jp-ExecExt-diffLine'), null);
  assert.equal(renderMessage(doc, 'one line').tagName, 'DIV');
});

test('a policy violation is said once, not once per test', () => {
  const violation = 'line 1: importing os is not allowed in this exercise';
  const node = renderSubmission(doc, {
    exercise_id: 'x', status: 'policy_violation', score: 0, max_score: 2, stdout: '',
    stderr: `${violation}\n${violation}\n`, duration_ms: 1, message: violation,
    tests: ['a', 'b'].map(name => ({ name, status: 'error', points: 0, max_points: 1, hidden: false,
      message: `not run: the submitted code did not run to the end (policy_violation: ${violation})` }))
  });
  assert.equal(text(node).split(violation).length - 1, 1, text(node));
  assert.equal(node.querySelector('.jp-ExecExt-stderr'), null);
  assert.match(text(node.querySelectorAll('.jp-ExecExt-test')[1]), /see the message above/);
  assert.equal(uniqueLines('a\nb\na\n'), 'a\nb');
});

test('with expected and actual side by side, a diff in the message is not repeated', () => {
  const node = renderSubmission(doc, {
    exercise_id: 'x', status: 'ok', score: 0, max_score: 1, stdout: '', stderr: '', duration_ms: 1,
    tests: [{ name: 'fizz', status: 'failed', points: 0, max_points: 1, hidden: false,
      message: 'output differs from the expected output:\n--- expected\n+++ actual\n@@ -1,2 +1,2 @@\n 1\n-Fizz\n+2\n',
      expected: '1\nFizz\n', actual: '1\n2\n' }]
  });
  assert.equal(text(node.querySelector('.jp-ExecExt-test .jp-ExecExt-message')), 'output differs from the expected output:');
  assert.equal(node.querySelector('.jp-ExecExt-diff'), null);
  assert.equal(text(node.querySelector('.jp-ExecExt-expected mark')), 'Fizz');
});
