// End-to-end test of the lab extension in Debian's chromium, against a running JupyterLab whose
// server runs code in the real Docker sandbox. Started by tests/lab/test_e2e.py, which sets:
//   E2E_URL (base URL with trailing slash), E2E_TOKEN, E2E_NOTEBOOK (path under root_dir),
//   E2E_ARTIFACTS (screenshots and report.json go there), E2E_CHROMIUM (default /usr/bin/chromium),
//   E2E_FRONTEND (`lab`: JupyterLab, `notebook`: Notebook 7; the same server serves both),
//   E2E_SETTINGS_DIR (the server's JUPYTERLAB_SETTINGS_DIR: the test switches to the dark theme).
// The student flow with the mouse in the light theme, then with the keyboard alone in the dark
// theme; axe-core checks the extension's own nodes in each state (toolbar, status, the sandbox box
// running, ok and with an error, the Results panel).
// Every wait is for a state on the page, bounded so a broken build fails instead of hanging.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { axeViolations } from './a11y.mjs';
import { check, finish, launch, newReport, setEditor } from './browser.mjs';

const url = process.env.E2E_URL;
const token = process.env.E2E_TOKEN;
const notebook = process.env.E2E_NOTEBOOK;
const artifacts = process.env.E2E_ARTIFACTS;
const frontend = process.env.E2E_FRONTEND || 'lab';
const settingsDir = process.env.E2E_SETTINGS_DIR;
if (!url || !token || !notebook || !artifacts || !settingsDir || !['lab', 'notebook'].includes(frontend)) {
  console.error('E2E_URL, E2E_TOKEN, E2E_NOTEBOOK, E2E_ARTIFACTS and E2E_SETTINGS_DIR must be set, E2E_FRONTEND lab or notebook');
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

const BROKEN = `import time
time.sleep(2)
print(1 / 0)
`;

const report = newReport({ frontend, submitRequests: [], axe: [] });
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
// Leaving the page with unsaved edits (the switch to the dark theme reloads it): leave.
page.on('dialog', dialog => void dialog.accept());
const notebookUrl = frontend === 'lab' ? `${url}lab/tree/${notebook}?token=${token}` : `${url}notebooks/${notebook}?token=${token}`;

/** axe-core over our nodes in their current state: any violation fails the test. */
const audit = async (state, theme) => {
  const { checked, violations } = await axeViolations(page);
  report.axe.push({ state, theme, checked, violations: violations.length });
  check(violations.length === 0, `axe (${theme}, ${state}): ${JSON.stringify(violations, null, 2)}`);
};

/** What the keyboard focus is on, in words the checks compare. */
const focused = () => page.evaluate(() => {
  const node = document.activeElement;
  if (!node || node === document.body) {
    return 'body';
  }
  if (node.closest('[data-jp-item-name="submit-exercise"]')) {
    return 'submit button';
  }
  if (node.closest('.jp-ExecExt-resultsPanel')) {
    return node.classList.contains('jp-ExecExt-title') ? 'results heading' : 'results panel';
  }
  return `${node.tagName.toLowerCase()}.${node.className}`;
});

/** The Results panel as a screen reader meets it: its name, busy state and live summary. */
const resultsA11y = () => page.evaluate(() => {
  const region = document.querySelector('.jp-ExecExt-resultsPanel');
  const label = region?.getAttribute('aria-labelledby');
  return {
    role: region?.getAttribute('role'),
    name: label ? document.getElementById(label)?.textContent : null,
    busy: region?.getAttribute('aria-busy'),
    live: region?.querySelector('.jp-ExecExt-live')?.textContent,
    liveMode: region?.querySelector('.jp-ExecExt-live')?.getAttribute('aria-live'),
    visible: !!region && region.getBoundingClientRect().width > 0
  };
});

/** Where the Results panel went: beside the notebook, in a side panel, or above the notebook. */
const placement = () => page.evaluate(() => {
  const panel = document.querySelector('.jp-ExecExt-resultsPanel');
  if (!panel) {
    return 'none';
  }
  if (panel.closest('.jp-NotebookPanel')) {
    return 'inline';
  }
  if (panel.closest('#jp-right-stack, .jp-SidePanel, #jp-right-panel, [id*="right"]')) {
    return 'side';
  }
  return 'split';
});

const expectedSummary = async results => {
  const total = await results.locator('.jp-ExecExt-test').count();
  const passed = await results.locator('.jp-ExecExt-test[data-status="passed"]').count();
  const score = results.locator('.jp-ExecExt-score');
  return `Results: ${passed} of ${total} test${total === 1 ? '' : 's'} pass, score ${await score.getAttribute('data-score')} of ${await score.getAttribute('data-max-score')}`;
};

const waitForLive = text => page.waitForFunction(
  want => document.querySelector('.jp-ExecExt-resultsPanel .jp-ExecExt-live')?.textContent === want, text);

await finish(browser, report, artifacts, async () => {
  if (frontend === 'notebook') {
    // Notebook 7's file browser shows no sandbox state: nothing polls docker/status there.
    const polls = [];
    const count = request => {
      if (/\/api\/exec\/v1\/docker\/status/.test(request.url())) {
        polls.push(request.url());
      }
    };
    page.on('request', count);
    await page.goto(`${url}tree?token=${token}`);
    await page.locator('.jp-DirListing').first().waitFor();
    await page.waitForTimeout(12_000); // longer than the poll's 10 s interval
    page.off('request', count);
    check(polls.length === 0, `docker/status polled ${polls.length} times with nothing showing it`);
    report.treePolls = polls.length;
  }
  await page.goto(notebookUrl);
  const panel = page.locator('.jp-NotebookPanel').first();
  await panel.waitFor();
  const runButton = panel.locator('.jp-Toolbar-item[data-jp-item-name="run-in-sandbox"] button');
  const submitButton = panel.locator('.jp-Toolbar-item[data-jp-item-name="submit-exercise"] button');
  await runButton.waitFor();
  await submitButton.waitFor();
  const status = page.locator('.jp-ExecExt-status');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');
  // Lab: in the status bar. Notebook 7 has none: in the notebook's toolbar.
  const statusWhere = await page.evaluate(() => {
    const node = document.querySelector('.jp-ExecExt-status');
    return node.closest('.jp-Toolbar') ? 'toolbar' : node.closest('#jp-main-statusbar, .jp-StatusBar-Widget') ? 'status bar' : 'elsewhere';
  });
  check(statusWhere === (frontend === 'lab' ? 'status bar' : 'toolbar'), `the sandbox state is in the ${statusWhere}`);
  const statusA11y = await page.evaluate(() => {
    const node = document.querySelector('.jp-ExecExt-status');
    return { tabIndex: node.tabIndex, role: node.getAttribute('role'),
      description: document.getElementById(node.getAttribute('aria-describedby'))?.textContent };
  });
  check(statusA11y.tabIndex === 0 && statusA11y.role === 'status' && statusA11y.description,
    `status item not focusable or without a description: ${JSON.stringify(statusA11y)}`);
  if (statusWhere === 'toolbar') {
    // In the toolbar it is a Tab stop too: Tab from the Submit button reaches it.
    await submitButton.focus();
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement?.classList.contains('jp-ExecExt-status')),
      `Tab from Submit does not reach the sandbox state (focus on ${await focused()})`);
    statusA11y.tabFromSubmit = true;
  }
  await audit('toolbar and status', 'light');
  step('notebook open: toolbar buttons and status item shown', { status: await status.textContent(), statusWhere, statusA11y });

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
  await audit('output box ok', 'light');
  step('run in sandbox (toolbar)', { stdout: stdout1, screenshot: await shot('01-run-in-sandbox.png') });

  // 2. Submit the wrong solution, with a double click: one request only, failing tests shown,
  //    the panel named by its heading, the summary said, the focus still on Submit.
  // (A toolbar button keeps the focus where it was when clicked: on the cell.)
  const focusBefore = await focused();
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
  const summary1 = await expectedSummary(results);
  await waitForLive(summary1);
  const a11y1 = await resultsA11y();
  check(a11y1.role === 'region' && a11y1.name?.startsWith('Results: ') && a11y1.busy === 'false' && a11y1.liveMode === 'polite' && a11y1.visible,
    `Results panel: ${JSON.stringify(a11y1)}`);
  const where = await placement();
  check(frontend === 'lab' ? where === 'split' : where !== 'none', `Results panel placed: ${where}`);
  check((await focused()) === focusBefore && focusBefore !== 'body', `focus after submitting: ${await focused()}, before: ${focusBefore}`);
  await audit('results panel (failing tests)', 'light');
  await results.screenshot({ path: join(artifacts, 'results-panel-failing.png') });
  step('submit wrong solution', { score: score1, failedTests, expected, actual, placement: where, summary: a11y1.live,
    screenshot: await shot('02-submit-wrong.png') });

  // 3. Submit again at once: asked first; Cancel sends nothing and gives the focus back.
  await submitButton.click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor();
  check(/Submit again\?/.test(await dialog.textContent()), 'no "Submit again?" question');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  check(report.submitRequests.length === 1, 'a cancelled repeat was submitted');
  check((await focused()) === focusBefore, `focus after the question: ${await focused()}, before: ${focusBefore}`);
  step('repeat within seconds asks first', { requests: report.submitRequests.length });

  // 4. A slow program that fails: the box while running, then with its error.
  await setCellSource(studentCell, BROKEN);
  await runButton.click();
  await studentCell.locator('.jp-ExecExt-cellOutput .jp-ExecExt-pending').waitFor();
  await audit('output box running', 'light');
  await studentCell.locator('.jp-ExecExt-run[data-status="runtime_error"]').waitFor();
  await audit('output box error', 'light');
  step('run a failing program', { screenshot: await shot('03-run-error.png') });

  // 5. Dark theme, keyboard only from here on: fix the code, run it with the shortcut, submit
  //    from the command palette, read the results.
  mkdirSync(join(settingsDir, '@jupyterlab', 'apputils-extension'), { recursive: true });
  writeFileSync(join(settingsDir, '@jupyterlab', 'apputils-extension', 'themes.jupyterlab-settings'),
    JSON.stringify({ theme: 'JupyterLab Dark' }));
  await page.goto(notebookUrl);
  await page.waitForFunction(() => document.body.dataset.jpThemeLight === 'false');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');
  await page.locator('.jp-NotebookPanel .jp-CodeCell').first().waitFor();
  await audit('toolbar and status', 'dark');
  // The first code cell, reached with the notebook's own keys (Escape: command mode; k/j: up/down).
  await page.waitForFunction(() => !!document.activeElement?.closest('.jp-Notebook'), null, { timeout: 15_000 })
    .catch(() => {});
  // The shortcuts answer once the front end has bound them, which after a reload can be a moment
  // after the cells show (Notebook 7 on a busy machine): keep pressing, bounded, until they do.
  const onCodeCell = () => page.evaluate(
    () => document.querySelector('.jp-Cell.jp-mod-active')?.classList.contains('jp-CodeCell'));
  const inNotebook = () => page.evaluate(() => !!document.activeElement?.closest('.jp-Notebook'));
  for (let round = 0; round < 40 && (round === 0 || !(await onCodeCell())); round++) {
    // If the page came back with the focus on its body (it can, after a reload in Notebook 7),
    // a keyboard user tabs into the notebook first; the notebook's keys answer only there.
    for (let i = 0; i < 80 && !(await inNotebook()); i++) {
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Escape');
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('k');
    }
    for (let i = 0; i < 12 && !(await onCodeCell()); i++) {
      await page.keyboard.press('j');
    }
    if (!(await onCodeCell())) {
      await page.waitForTimeout(250);
    }
  }
  check(await page.evaluate(() => document.querySelector('.jp-Cell.jp-mod-active')?.classList.contains('jp-CodeCell')),
    `the keyboard did not reach a code cell (focus on ${await focused()})`);
  await page.keyboard.press('Enter');
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(BROKEN);
  await page.keyboard.press('Control+Alt+Enter');
  const darkCell = page.locator('.jp-NotebookPanel .jp-CodeCell').first();
  await darkCell.locator('.jp-ExecExt-cellOutput .jp-ExecExt-pending').waitFor();
  await audit('output box running', 'dark');
  await darkCell.locator('.jp-ExecExt-run[data-status="runtime_error"]').waitFor();
  await audit('output box error', 'dark');
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(FIXED);
  await page.keyboard.press('Control+Alt+Enter');
  await page.waitForFunction(
    () => document.querySelector('.jp-CodeCell .jp-ExecExt-run .jp-ExecExt-stdout pre')?.textContent?.trim() === 'average of 1..4 is 2.5'
  );
  await audit('output box ok', 'dark');
  step('run fixed code (keyboard, shortcut)', { screenshot: await shot('04-run-fixed.png') });

  const palette = async (query, label) => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+Shift+C');
    const input = page.locator('.lm-CommandPalette-input:visible');
    await input.waitFor();
    await page.keyboard.insertText(query);
    const first = page.locator('.lm-CommandPalette-item.lm-mod-active .lm-CommandPalette-itemLabel, .lm-CommandPalette-item:visible .lm-CommandPalette-itemLabel').first();
    await page.waitForFunction(want => [...document.querySelectorAll('.lm-CommandPalette-item.lm-mod-active .lm-CommandPalette-itemLabel')]
      .some(n => n.textContent === want), label, { timeout: 10_000 }).catch(async () => {
      throw new Error(`palette: "${query}" does not select "${label}" but ${await first.textContent()}`);
    });
    await page.keyboard.press('Enter');
  };
  // While in flight, Submit says so and is aria-disabled, not disabled (it keeps the focus).
  await page.evaluate(() => {
    window.__submitStates = [];
    const button = document.querySelector('.jp-NotebookPanel [data-jp-item-name="submit-exercise"] .jp-ToolbarButtonComponent');
    new MutationObserver(() => window.__submitStates.push(
      `${button.getAttribute('aria-disabled')}|${button.hasAttribute('disabled')}|${button.textContent}`))
      .observe(button, { attributes: true, childList: true, subtree: true, characterData: true });
  });
  await palette('Submit', 'Submit');
  await page.locator('.jp-ExecExt-submission[data-status="full"]').waitFor();
  const full = page.locator('.jp-ExecExt-submission');
  const score2 = await full.locator('.jp-ExecExt-score').textContent();
  const max = await full.locator('.jp-ExecExt-score').getAttribute('data-max-score');
  check(score2 === `Score: ${max} / ${max}`, `not the full score: ${score2}`);
  const total = await full.locator('.jp-ExecExt-test').count();
  const passed = await full.locator('.jp-ExecExt-test[data-status="passed"]').count();
  check(total > 0 && passed === total, `${passed} of ${total} tests passed`);
  const summary2 = await expectedSummary(full);
  await waitForLive(summary2);
  check((await focused()) !== 'body', 'the focus was lost to the page after submitting');
  const submitStates = await page.evaluate(() => window.__submitStates);
  check(submitStates.includes('true|false|Submitting…') && submitStates.at(-1) === 'false|false|Submit',
    `Submit while in flight: ${JSON.stringify(submitStates)}`);
  await audit('results panel (all pass)', 'dark');
  // Read the results: the palette's "Show submission results" puts the focus on their heading.
  await palette('Show submission results', 'Show submission results');
  await page.waitForFunction(() => document.activeElement?.classList.contains('jp-ExecExt-title'));
  const heading = await page.evaluate(() => ({ text: document.activeElement.textContent, tag: document.activeElement.tagName }));
  check(heading.tag === 'H2' && heading.text.startsWith('Results: '), `focus on ${JSON.stringify(heading)}`);
  await full.screenshot({ path: join(artifacts, 'results-panel-passing.png') });
  step('submit fixed solution (keyboard)', { score: score2, passed, total, summary: summary2, heading,
    screenshot: await shot('05-submit-passed.png') });
});
