// End-to-end test of the lab extension in Debian's chromium, against a running JupyterLab whose
// server runs code in the real Docker sandbox. Started by tests/lab/test_e2e.py, which sets:
//   E2E_URL (base URL with trailing slash), E2E_TOKEN, E2E_NOTEBOOK (path under root_dir),
//   E2E_ARTIFACTS (screenshots and report.json go there), E2E_CHROMIUM (default /usr/bin/chromium).
// Every wait is for a state on the page, bounded so a broken build fails instead of hanging.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { check, finish, launch, newReport, setEditor } from './browser.mjs';

const url = process.env.E2E_URL;
const token = process.env.E2E_TOKEN;
const notebook = process.env.E2E_NOTEBOOK;
const artifacts = process.env.E2E_ARTIFACTS;
if (!url || !token || !notebook || !artifacts) {
  console.error('E2E_URL, E2E_TOKEN, E2E_NOTEBOOK and E2E_ARTIFACTS must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const WRONG = `def average(numbers):
    if not numbers:
        return None
    return sum(numbers) // len(numbers)


def above_average(numbers):
    return [n for n in numbers if n >= average(numbers)]


print("average of 1..4 is", average([1, 2, 3, 4]))
`;
const FIXED = `def average(numbers):
    if not numbers:
        return None
    return sum(numbers) / len(numbers)


def above_average(numbers):
    mean = average(numbers)
    return [n for n in numbers if n > mean]


print("average of 1..4 is", average([1, 2, 3, 4]))
`;

const report = newReport({ submitRequests: [] });
const step = report.step;
const browser = await launch();
const page = browser.page;
page.on('request', request => {
  if (request.method() === 'POST' && /\/api\/exec\/v1\/exercises\/[^/]+\/submit(\?|$)/.test(request.url())) {
    report.submitRequests.push(new Date().toISOString());
  }
});

const shot = async name => {
  const file = join(artifacts, name);
  await page.screenshot({ path: file });
  return file;
};

/** Replaces the source of a code cell. */
const setCellSource = (cell, source) => setEditor(page, cell, source);

await finish(browser, report, artifacts, async () => {
  await page.goto(`${url}lab/tree/${notebook}?token=${token}`);
  const panel = page.locator('.jp-NotebookPanel').first();
  await panel.waitFor();
  const runButton = panel.locator('.jp-Toolbar-item[data-jp-item-name="run-in-sandbox"] button');
  const submitButton = panel.locator('.jp-Toolbar-item[data-jp-item-name="submit-exercise"] button');
  await runButton.waitFor();
  await submitButton.waitFor();
  const status = page.locator('.jp-ExecExt-status');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');
  step('notebook open: toolbar buttons and status item shown', { status: await status.textContent() });

  // The student cell of the released copy (the starter the student edits).
  const studentCell = panel.locator('.jp-CodeCell').first();
  await setCellSource(studentCell, WRONG);

  // 1. Run in sandbox from the toolbar: the output shows under the cell, marked as sandbox output.
  await runButton.click();
  const runBox = studentCell.locator('.jp-ExecExt-run');
  await runBox.waitFor();
  const stdout1 = await runBox.locator('.jp-ExecExt-stdout pre').textContent();
  check(stdout1.trim() === 'average of 1..4 is 2', `unexpected sandbox stdout: ${JSON.stringify(stdout1)}`);
  check((await runBox.locator('.jp-ExecExt-title').textContent()) === 'Sandbox output', 'run box is not titled Sandbox output');
  check((await runBox.getAttribute('data-status')) === 'ok', 'run status is not ok');
  step('run in sandbox (toolbar)', { stdout: stdout1, screenshot: await shot('01-run-in-sandbox.png') });

  // 2. Submit the wrong solution, with a double click: one request only, failing tests shown.
  await submitButton.dblclick();
  const results = page.locator('.jp-ExecExt-submission');
  await results.waitFor();
  const score1 = await results.locator('.jp-ExecExt-score').textContent();
  const failedTests = await results.locator('.jp-ExecExt-test[data-status="failed"]').count();
  check(report.submitRequests.length === 1, `a double click sent ${report.submitRequests.length} submissions`);
  check((await results.getAttribute('data-status')) === 'partial', 'a wrong solution got full marks');
  check(failedTests > 0, 'no failing test shown for a wrong solution');
  const expected = await results.locator('.jp-ExecExt-test[data-status="failed"] .jp-ExecExt-expected pre').first().textContent();
  const actual = await results.locator('.jp-ExecExt-test[data-status="failed"] .jp-ExecExt-actual pre').first().textContent();
  check(expected !== actual, 'expected and actual of a failing test are equal');
  await results.screenshot({ path: join(artifacts, 'results-panel-failing.png') });
  step('submit wrong solution', { score: score1, failedTests, expected, actual, screenshot: await shot('02-submit-wrong.png') });

  // 3. Fix the code and run it with the keyboard shortcut (Ctrl+Alt+Enter).
  await setCellSource(studentCell, FIXED);
  await page.keyboard.press('Control+Alt+Enter');
  await page.waitForFunction(
    () => document.querySelector('.jp-CodeCell .jp-ExecExt-run .jp-ExecExt-stdout pre')?.textContent?.trim() === 'average of 1..4 is 2.5'
  );
  step('run fixed code (shortcut)', { screenshot: await shot('03-run-fixed.png') });

  // 4. Submit again: every test passes, full score.
  await submitButton.click();
  await page.locator('.jp-ExecExt-submission[data-status="full"]').waitFor();
  const full = page.locator('.jp-ExecExt-submission');
  const score2 = await full.locator('.jp-ExecExt-score').textContent();
  const max = await full.locator('.jp-ExecExt-score').getAttribute('data-max-score');
  check(score2 === `Score: ${max} / ${max}`, `not the full score: ${score2}`);
  const total = await full.locator('.jp-ExecExt-test').count();
  const passed = await full.locator('.jp-ExecExt-test[data-status="passed"]').count();
  check(total > 0 && passed === total, `${passed} of ${total} tests passed`);
  await full.screenshot({ path: join(artifacts, 'results-panel-passing.png') });
  step('submit fixed solution', { score: score2, passed, total, screenshot: await shot('04-submit-passed.png') });
});
