import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { JSDOM } from 'jsdom';
import Ajv2020 from 'ajv/dist/2020';

import { describeErrors, renderPreview, renderValidation } from '../src/authoring-render';
import { applyRole, roleBadge } from '../src/roles';

const doc = new JSDOM('<!doctype html><body></body>').window.document;
// The schema the server ships and serves at authoring/schema.
const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'jupyter_exec_ext', 'grading', 'exercise.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

function cell(type: string, metadata: Record<string, any> = {}) {
  const meta: Record<string, any> = JSON.parse(JSON.stringify(metadata));
  return {
    type,
    meta,
    getMetadata: (key: string) => meta[key],
    setMetadata: (key: string, value: any) => (meta[key] = value),
    deleteMetadata: (key: string) => delete meta[key],
    sharedModel: { getSource: () => '' }
  };
}

test('a role choice writes the metadata the server reads, and the badge follows it', () => {
  const c = cell('code', { jupyter_exec: { role: 'starter', note: 'kept' } });
  assert.equal(roleBadge(c), 'starter');
  applyRole(c, 'solution');
  assert.deepEqual(c.meta, { jupyter_exec: { role: 'solution', note: 'kept' } });
  applyRole(c, 'read-only');
  assert.deepEqual(c.meta, { jupyter_exec: { note: 'kept' }, editable: false });
  assert.equal(roleBadge(c), 'read-only');
  applyRole(c, 'student');
  assert.deepEqual(c.meta, { jupyter_exec: { role: 'student', note: 'kept' } });
  const plain = cell('code', { jupyter_exec: { role: 'starter' } });
  applyRole(plain, 'none');
  assert.deepEqual(plain.meta, {});
  assert.equal(roleBadge(plain), null);
  // Markdown cells are prompts (or nothing); a solution must be code.
  const md = cell('markdown');
  applyRole(md, 'prompt');
  assert.deepEqual(md.meta, { jupyter_exec: { role: 'prompt' } });
  assert.throws(() => applyRole(md, 'solution'), /The solution role is for code cells/);
});

test('schema errors become messages on the field that is wrong', () => {
  const good = { exercise_id: 'sum-list', title: 'Sum', tests: [{ name: 'a', test_code: 'assert True' }] };
  assert.equal(validate(good), true);
  assert.equal(describeErrors(good, validate.errors).size, 0);
  const bad = {
    exercise_id: 'Sum List', title: 'Sum',
    tests: [{ name: 'a', test_code: '', timeout: 0, compare: 'fuzzy' }, { name: 'a', test_code: 'x', points: -1 }]
  };
  assert.equal(validate(bad), false);
  const errors = describeErrors(bad, validate.errors);
  assert.match(errors.get('/exercise_id')!, /lowercase letters, digits/);
  assert.equal(errors.get('/tests/0/test_code'), 'must not be empty');
  assert.equal(errors.get('/tests/0/timeout'), 'must be > 0');
  assert.equal(errors.get('/tests/0/compare'), 'must be one of exact, strip, float, regex');
  assert.equal(errors.get('/tests/1/points'), 'must be >= 0');
  assert.equal(errors.get('/tests/1/name'), 'another test has the same name');
  const empty = { exercise_id: 'x', tests: [] };
  validate(empty);
  assert.equal(describeErrors(empty, validate.errors).get('/tests'), 'an exercise needs at least one test');
  const missing = { exercise_id: 'x', tests: [{ name: 'a' }] };
  validate(missing);
  assert.equal(describeErrors(missing, validate.errors).get('/tests/0/test_code'), 'is required');
});

test('the validator answer shows every test of the reference and the starter', () => {
  const tests = (status: string) => [
    { name: 'visible', status, points: status === 'passed' ? 1 : 0, max_points: 1, hidden: false, message: status === 'passed' ? '' : "expected '6' but got 'None'" },
    { name: 'secret', status, points: status === 'passed' ? 1 : 0, max_points: 1, hidden: true, message: '' }
  ];
  const node = renderValidation(doc, {
    exercise_id: 'x', ok: true, problem: '', warning: '',
    solution: { status: 'ok', score: 2, max_score: 2, stderr: '', tests: tests('passed') },
    starter: { status: 'ok', score: 0, max_score: 2, stderr: '', tests: tests('failed') }
  });
  assert.equal(node.dataset.ok, 'true');
  assert.equal(node.querySelector('[data-part="solution"] h4')!.textContent, 'Reference solution: 2 / 2 points');
  assert.equal(node.querySelectorAll('[data-part="starter"] [data-status="failed"]').length, 2);
  assert.match(node.querySelector('[data-part="starter"] .jp-ExecExt-message')!.textContent!, /expected '6'/);
  assert.match(node.querySelector('[data-part="solution"]')!.textContent!, /secret \(hidden\)/);
  const bad = renderValidation(doc, { exercise_id: 'x', ok: false, problem: "no reference solution (a code cell with role 'solution')", warning: '', solution: null, starter: null });
  assert.equal(bad.querySelector('.jp-ExecExt-validationSummary')!.textContent, "Not valid: no reference solution (a code cell with role 'solution').");
});

test('the validator answer lists the wrong solutions and the tests that catch them', () => {
  const node = renderValidation(doc, {
    exercise_id: 'x', ok: false, problem: "1 of 2 wrong solutions score full marks (no test catches them): 'floor'", warning: '',
    solution: null, starter: null,
    wrong_solutions: [
      { name: 'off by one', reason: 'stops one short', score: 1, max_score: 3, caught: true, caught_by_visible: true,
        caught_by: [{ name: 'secret', hidden: true, status: 'failed' }, { name: 'small', hidden: false, status: 'failed' }] },
      { name: 'floor', reason: '', score: 3, max_score: 3, caught: false, caught_by_visible: false, caught_by: [] }
    ]
  });
  const part = node.querySelector('[data-part="wrong"]')!;
  assert.equal(part.querySelector('h4')!.textContent, 'Wrong solutions: 1 of 2 caught, 1 by a visible test');
  const rows = [...part.querySelectorAll('tr[data-caught]')];
  assert.deepEqual(rows.map(r => r.querySelector('th')!.textContent), ['off by one: stops one short', 'floor']);
  assert.equal(rows[0].querySelectorAll('td')[1].textContent, 'small, secret (hidden)');
  assert.match(rows[1].querySelectorAll('td')[1].textContent!, /scores full marks/);
  assert.equal(part.querySelector('th')!.getAttribute('scope'), 'col');
});

test('the preview shows the copy read-only, markdown rendered and code as text', () => {
  const nb = {
    cells: [
      { cell_type: 'markdown', source: ['# Sum'], metadata: { jupyter_exec: { role: 'prompt' } } },
      { cell_type: 'code', source: '<b>def total(n):</b>', metadata: { jupyter_exec: { role: 'student' } } }
    ],
    metadata: { jupyter_exec: { tests: [{ name: 'visible one' }] } }
  };
  const node = renderPreview(doc, nb, (md, host) => (host.textContent = `rendered:${md}`));
  assert.equal(node.querySelector('.jp-ExecExt-previewMarkdown')!.textContent, 'rendered:# Sum');
  assert.equal(node.querySelector('pre')!.textContent, '<b>def total(n):</b>');
  assert.equal(node.querySelector('b'), null);
  assert.deepEqual([...node.querySelectorAll('.jp-ExecExt-roleBadge')].map(b => b.textContent), ['prompt', 'student']);
  assert.equal(node.querySelector('.jp-ExecExt-previewTests li')!.textContent, 'visible one');
});
