// End-to-end test of authoring and of the student's view, in Debian's chromium. Started by
// tests/lab/test_authoring_e2e.py, which sets:
//   E2E_INSTRUCTOR_URL, E2E_STUDENT_URL (base URLs with a trailing slash), E2E_TOKEN (both),
//   E2E_ARTIFACTS (screenshots and report.json), E2E_CHROMIUM (default /usr/bin/chromium),
//   E2E_DOCS_DIR (optional: the README's screenshots are written there too).
// Every wait is for a state on the page, bounded so a broken build fails instead of hanging.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { check, finish, launch, newReport, setEditor as setEditorOf } from './browser.mjs';

const instructorUrl = process.env.E2E_INSTRUCTOR_URL;
const studentUrl = process.env.E2E_STUDENT_URL;
const token = process.env.E2E_TOKEN;
const artifacts = process.env.E2E_ARTIFACTS;
const docsDir = process.env.E2E_DOCS_DIR;
if (!instructorUrl || !studentUrl || !token || !artifacts) {
  console.error('E2E_INSTRUCTOR_URL, E2E_STUDENT_URL, E2E_TOKEN and E2E_ARTIFACTS must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const PROMPT = '# Sum a list\n\nWrite `total(numbers)` that returns the sum of a list of numbers.';
const STARTER = 'def total(numbers):\n    pass\n';
const SOLUTION = 'def total(numbers):\n    return sum(numbers)\n';
const WRONG = 'def total(numbers):\n    return first(numbers) + sum(numbers[1:])\n';
const HELPER = 'def first(numbers):\n    return numbers[0]\n';
const RIGHT = 'def total(numbers):\n    return sum(numbers)\n';

const report = newReport({ a11y: {} });
const step = report.step;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const browser = await launch();
const page = browser.page;

async function screenshot(name, locator = page) {
  const file = join(artifacts, name);
  await locator.screenshot({ path: file });
  if (docsDir) {
    copyFileSync(file, join(docsDir, name));
  }
  return file;
}

const setEditor = (editor, source) => setEditorOf(page, editor, source);

/** Sets the role of the active cell through its cell toolbar's Role… button and the dialog. */
async function setRoleFromToolbar(cell, role) {
  await cell.click({ position: { x: 30, y: 5 } });
  await cell.locator('.jp-cell-toolbar [data-jp-item-name="exercise-role"] button, .jp-cell-toolbar [data-command="jupyter-exec-ext:choose-role"]').first().click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('select').selectOption(role);
  await dialog.getByRole('button', { name: 'Set role' }).click();
  await cell.locator(`.jp-ExecExt-roleBadge.jp-ExecExt-role-${role}`).waitFor();
}

/** Sets the role of a cell through the context menu's "Exercise role" submenu. */
async function setRoleFromMenu(cell, label, role) {
  await cell.click({ button: 'right', position: { x: 30, y: 5 } });
  await page.locator('.lm-Menu-item', { hasText: 'Exercise role' }).first().hover();
  await page.locator('.lm-Menu-item', { hasText: new RegExp(`^${label}`) }).last().click();
  await cell.locator(`.jp-ExecExt-roleBadge.jp-ExecExt-role-${role}`).waitFor();
}

/**
 * Runs axe-core's WCAG 2.1 A and AA rules (contrast included) on the extension's own elements
 * of the page; any violation fails the test.
 */
async function audit(name, selectors) {
  if (!(await page.evaluate(() => 'axe' in window))) {
    await page.addScriptTag({ content: axeSource });
  }
  const violations = await page.evaluate(async include => {
    const result = await window.axe.run({ include: include.map(s => [s]) },
      { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map(v => ({ id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }));
  }, selectors);
  const theme = await page.evaluate(() => document.body.dataset.jpThemeName);
  report.a11y[name] = { theme, violations };
  check(violations.length === 0, `${name} (${theme}): accessibility violations: ${JSON.stringify(violations)}`);
}

await finish(browser, report, artifacts, async () => {
  // -- the instructor ---------------------------------------------------------------------------
  await page.goto(`${instructorUrl}lab?token=${token}`);
  await page.waitForFunction(() => document.body.dataset.execExtMode === 'instructor');
  // A blank notebook from the Launcher.
  await page.locator('.jp-LauncherCard[data-category="Notebook"]').first().click();
  const notebook = page.locator('.jp-NotebookPanel').first();
  await notebook.waitFor();
  const cells = notebook.locator('.jp-Notebook .jp-Cell');
  await cells.first().waitFor();

  // Prompt (Markdown), starter and solution cells, typed as an instructor would.
  await setEditor(cells.nth(0), PROMPT);
  await page.keyboard.press('Escape');
  await page.keyboard.press('m');
  await page.keyboard.press('b');
  await setEditor(cells.nth(1), STARTER);
  await page.keyboard.press('Escape');
  await page.keyboard.press('b');
  await setEditor(cells.nth(2), SOLUTION);
  await page.keyboard.press('Escape');
  await setRoleFromToolbar(cells.nth(0), 'prompt');
  await setRoleFromToolbar(cells.nth(1), 'starter');
  await setRoleFromMenu(cells.nth(2), 'Solution', 'solution');
  step('roles set', { badges: await notebook.locator('.jp-ExecExt-roleBadge').allTextContents() });

  // The Exercise panel: make it an exercise, edit the example test, add a hidden one.
  await notebook.locator('.jp-Toolbar-item[data-jp-item-name="exercise-authoring"] button').click();
  const panel = page.locator('.jp-ExecExt-exercisePanel');
  await panel.waitFor();
  await panel.getByLabel('Exercise id').fill('sum-list');
  await panel.getByLabel('Title').fill('Sum a list');
  await panel.getByRole('button', { name: 'Make this an exercise' }).click();
  const test1 = panel.locator('.jp-ExecExt-testEditor').nth(0);
  await test1.waitFor();
  await test1.getByLabel('Name', { exact: true }).fill('sums a short list');
  await setEditor(test1.locator('.jp-ExecExt-testCode'), 'print(total([1, 2, 3]))\n');
  await test1.getByLabel('Expected output').fill('6');
  // The schema is enforced as the instructor types: a zero timeout is refused, with the reason.
  await test1.getByLabel('Timeout (seconds)').fill('0');
  const error = await test1.locator('.jp-ExecExt-fieldError:not(:empty)').first().textContent();
  const saveStatus = await panel.locator('.jp-ExecExt-saveStatus').textContent();
  check(/must be > 0/.test(error) && /Not saved until fixed/.test(saveStatus), `no schema error shown: ${error} / ${saveStatus}`);
  check((await test1.getByLabel('Timeout (seconds)').getAttribute('aria-invalid')) === 'true', 'the bad field is not marked invalid');
  await test1.getByLabel('Timeout (seconds)').fill('5');
  check(/^Saved/.test(await panel.locator('.jp-ExecExt-saveStatus').textContent()), 'the fixed test was not saved');
  step('schema enforced as typed', { error, saveStatus });

  // With the keyboard: Add test, and the focus lands on the new test's name.
  await panel.getByRole('button', { name: 'Add test' }).focus();
  await page.keyboard.press('Enter');
  const test2 = panel.locator('.jp-ExecExt-testEditor').nth(1);
  await page.keyboard.press('Control+A');
  await page.keyboard.type('an empty list sums to 0');
  check((await test2.getByLabel('Name', { exact: true }).inputValue()) === 'an empty list sums to 0', 'the new test did not get the focus');
  await setEditor(test2.locator('.jp-ExecExt-testCode'), 'assert total([]) == 0\n');
  await test2.getByLabel('Hidden', { exact: true }).check();
  check(/^Saved/.test(await panel.locator('.jp-ExecExt-saveStatus').textContent()), 'the tests were not saved');
  // Reorder and delete: a third test moved above the second, then deleted.
  const names = async () => Promise.all((await panel.locator('.jp-ExecExt-testEditor').all())
    .map(t => t.getByLabel('Name', { exact: true }).inputValue()));
  await panel.getByRole('button', { name: 'Add test' }).click();
  await panel.getByRole('button', { name: 'Move test 3 up' }).click();
  const reordered = await names();
  check(JSON.stringify(reordered) === JSON.stringify(['sums a short list', 'test 3', 'an empty list sums to 0']), `reorder: ${reordered}`);
  await panel.getByRole('button', { name: 'Delete test 2' }).click();
  const kept = await names();
  check(kept.length === 2 && kept[1] === 'an empty list sums to 0', `delete: ${kept}`);
  step('tests added, reordered, deleted', { reordered, kept });

  // Validate in the sandbox: every test of the reference and of the starter.
  await panel.getByRole('button', { name: 'Validate in sandbox' }).click();
  const validation = panel.locator('.jp-ExecExt-validation');
  await validation.waitFor({ timeout: 120_000 });
  check((await validation.getAttribute('data-ok')) === 'true', `not valid: ${await validation.textContent()}`);
  const solution = (await validation.locator('[data-part="solution"] h4').textContent()).replace('Reference solution: ', '');
  const starter = (await validation.locator('[data-part="starter"] h4').textContent()).replace('Starter code: ', '');
  step('validate', { solution, starter });
  await audit('authoring panel', ['.jp-ExecExt-exercisePanel', '.jp-ExecExt-cellMarks']);
  await panel.evaluate(node => (node.scrollTop = 0));
  await screenshot('authoring-panel.png');

  // Preview as student: the copy without the solution and the hidden test.
  await panel.getByRole('button', { name: 'Preview as student' }).click();
  const preview = page.locator('.jp-ExecExt-preview');
  await preview.waitFor();
  const previewText = await preview.textContent();
  check(!previewText.includes('return sum(numbers)') && !previewText.includes('an empty list'), 'the preview shows a secret');
  check(previewText.includes('sums a short list') && previewText.includes('pass'), 'the preview misses the starter or the visible test');
  step('preview');
  await page.getByTitle(/^Close Student preview/).click();

  // Release into the students' workspace.
  await panel.getByRole('button', { name: 'Release to students' }).click();
  const released = panel.locator('.jp-ExecExt-released');
  await released.waitFor();
  check((await released.getAttribute('data-action')) === 'added', `release: ${await released.textContent()}`);
  step('release', { message: await released.textContent() });

  // -- the student ------------------------------------------------------------------------------
  await page.goto(`${studentUrl}lab/tree/Untitled.ipynb?token=${token}`);
  const studentNb = page.locator('.jp-NotebookPanel').first();
  await studentNb.waitFor();
  await page.waitForFunction(() => document.body.dataset.execExtMode === 'student');
  const studentCells = studentNb.locator('.jp-Notebook .jp-Cell');
  await studentCells.nth(1).waitFor();
  const visible = await studentNb.textContent();
  check(!visible.includes('return sum(numbers)') && !visible.includes('an empty list'), 'the student sees a secret');
  check((await studentCells.count()) === 2, `the student copy has ${await studentCells.count()} cells`);
  check((await studentNb.locator('.jp-ExecExt-roleBadge').count()) === 0, 'role badges shown in student mode');
  check(!(await studentNb.locator('.jp-Toolbar-item[data-jp-item-name="exercise-authoring"]').isVisible()),
    'the authoring button is shown in student mode');

  // A wrong answer with a helper in a cell the student added.
  await setEditor(studentCells.nth(1), WRONG);
  await page.keyboard.press('Escape');
  await page.keyboard.press('b');
  await setEditor(studentCells.nth(2), HELPER);
  const submit = studentNb.locator('.jp-Toolbar-item[data-jp-item-name="submit-exercise"] button');
  await submit.click();
  let results = page.locator('.jp-ExecExt-submission');
  await results.waitFor({ timeout: 120_000 });
  const wrongScore = await results.locator('.jp-ExecExt-score').textContent();
  const graded = await results.locator('.jp-ExecExt-gradedCells').textContent();
  check(wrongScore === 'Score: 1 / 2', `wrong answer scored ${wrongScore}`);
  check((await studentNb.locator('.jp-ExecExt-gradedMark').count()) === 2, 'the graded cells are not marked');
  step('student: wrong answer', { score: wrongScore, graded });
  await audit('results and graded marks', ['.jp-ExecExt-submission', '.jp-ExecExt-cellMarks']);
  await screenshot('student-view.png');

  await setEditor(studentCells.nth(1), RIGHT);
  await submit.click();
  // Within seconds of the last submission Submit asks first ("Submit again?"): yes.
  const again = page.locator('.jp-Dialog button', { hasText: 'Submit again' });
  await again.waitFor({ timeout: 3_000 }).then(() => again.click(), () => {});
  await page.locator('.jp-ExecExt-submission[data-status="full"]').waitFor({ timeout: 120_000 });
  results = page.locator('.jp-ExecExt-submission');
  const rightScore = await results.locator('.jp-ExecExt-score').textContent();
  check(rightScore === 'Score: 2 / 2', `right answer scored ${rightScore}`);
  step('student: right answer', { score: rightScore });
});
