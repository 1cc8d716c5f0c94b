// The gradebook in Debian's chromium, against real JupyterLab servers that run code in the real
// Docker sandbox and record every submission. Started by tests/lab/test_gradebook_e2e.py, which sets:
//   E2E_STUDENT_URL, E2E_INSTRUCTOR_URL (base URLs with trailing slash; may be the same server),
//   E2E_TOKEN, E2E_NOTEBOOK (the student's exercise, under the student server's root),
//   E2E_EXERCISE (its id), E2E_MAX_ATTEMPTS (the student server's limit), E2E_ARTIFACTS,
//   E2E_CHROMIUM. Screenshots of the README: results-history.png and gradebook-panel.png.
// The student submits twice, reloads, finds the history and opens a past attempt; the instructor
// opens the Gradebook from the launcher and the palette, sorts, filters, downloads the CSV and
// reads the test statistics. axe-core checks both panels in the light and the dark theme.
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { check, finish, launch, newReport, setEditor } from './browser.mjs';

const studentUrl = process.env.E2E_STUDENT_URL;
const instructorUrl = process.env.E2E_INSTRUCTOR_URL;
const token = process.env.E2E_TOKEN;
const notebook = process.env.E2E_NOTEBOOK;
const exercise = process.env.E2E_EXERCISE;
const artifacts = process.env.E2E_ARTIFACTS;
const maxAttempts = process.env.E2E_MAX_ATTEMPTS;
if (!studentUrl || !instructorUrl || !token || !notebook || !exercise || !maxAttempts || !artifacts) {
  console.error('E2E_STUDENT_URL, E2E_INSTRUCTOR_URL, E2E_TOKEN, E2E_NOTEBOOK, E2E_EXERCISE, E2E_MAX_ATTEMPTS and E2E_ARTIFACTS must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const WRONG = `def average(numbers):
    if not numbers:
        return None
    return sum(numbers) // len(numbers)


def above_average(numbers):
    return [n for n in numbers if n >= average(numbers)]
`;
const FIXED = `def average(numbers):
    if not numbers:
        return None
    return sum(numbers) / len(numbers)


def above_average(numbers):
    mean = average(numbers)
    return [n for n in numbers if n > mean]
`;

const report = newReport({ a11y: {} });
const step = report.step;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const browser = await launch();
const page = browser.page;

async function screenshot(name, locator = page) {
  const file = join(artifacts, name);
  await locator.screenshot({ path: file });
  return file;
}

/** axe-core's WCAG 2.1 A and AA rules (contrast included) on the given elements. */
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

/**
 * Runs a command by its label from the command palette, with the keyboard only. The shortcut
 * works once JupyterLab has bound it, a moment after the page shows: tried again until then.
 */
async function fromPalette(label) {
  const input = page.locator('.jp-ModalCommandPalette .lm-CommandPalette-input');
  const chosen = () => page.waitForFunction(want => [...document.querySelectorAll('.jp-ModalCommandPalette .lm-CommandPalette-item.lm-mod-active .lm-CommandPalette-itemLabel')]
    .some(n => n.textContent === want), label, { timeout: 3000 }).then(() => true, () => false);
  for (let i = 0; i < 10; i++) {
    if (!(await input.isVisible())) {
      await page.keyboard.press('Escape');
      await page.keyboard.press('Control+Shift+C');
      await input.waitFor({ timeout: 2000 }).catch(() => {});
    }
    // JupyterLab may still take the focus back as it finishes restoring, closing the palette.
    if (await input.fill(label, { timeout: 2000 }).then(() => true, () => false)) {
      if (await chosen()) {
        await page.keyboard.press('Enter');
        return;
      }
    }
  }
  const shown = await page.locator('.jp-ModalCommandPalette .lm-CommandPalette-itemLabel').allTextContents();
  throw new Error(`palette: "${label}" is not the first choice; shown: ${shown.slice(0, 5)}`);
}

async function setTheme(name) {
  await fromPalette(`Use Theme: ${name}`);
  await page.waitForFunction(theme => document.body.dataset.jpThemeName === theme, name);
}

/** The live region's words once they say `pattern`. */
async function announced(scope, pattern) {
  const region = scope.locator('.jp-ExecExt-announce[aria-live="polite"]').first();
  await page.waitForFunction(([node, source]) => new RegExp(source).test(node.textContent), [await region.elementHandle(), pattern.source]);
  return region.textContent();
}

await finish(browser, report, artifacts, async () => {
  // -- the student ------------------------------------------------------------------------------
  await page.goto(`${studentUrl}lab/tree/${notebook}?token=${token}`);
  const nb = page.locator('.jp-NotebookPanel').first();
  await nb.waitFor();
  const submit = nb.locator('.jp-Toolbar-item[data-jp-item-name="submit-exercise"] button');
  await submit.waitFor();
  const cell = nb.locator('.jp-CodeCell').first();
  const results = page.locator('.jp-ExecExt-resultsPanel');
  const history = results.locator('.jp-ExecExt-history');
  const attempts = history.locator('.jp-ExecExt-attempt');

  await setEditor(page, cell, WRONG);
  await submit.click();
  await results.locator('.jp-ExecExt-submission').waitFor({ timeout: 120_000 });
  await page.waitForFunction(() => document.querySelectorAll('.jp-ExecExt-history .jp-ExecExt-attempt').length === 1);
  const wrongScore = await results.locator('.jp-ExecExt-score').textContent();
  check((await results.locator('.jp-ExecExt-submission').getAttribute('data-status')) === 'partial', 'a wrong answer got full marks');
  step('student: first submission, history of one', { score: wrongScore, attempt: await attempts.first().textContent() });

  await setEditor(page, cell, FIXED);
  await submit.click();
  // Within seconds of the last submission Submit asks first ("Submit again?"): yes.
  const again = page.locator('.jp-Dialog button', { hasText: 'Submit again' });
  await again.waitFor({ timeout: 3_000 }).then(() => again.click(), () => {});
  await results.locator('.jp-ExecExt-submission[data-status="full"]').waitFor({ timeout: 120_000 });
  await page.waitForFunction(() => document.querySelectorAll('.jp-ExecExt-history .jp-ExecExt-attempt').length === 2);
  const fullScore = await results.locator('.jp-ExecExt-score').textContent();
  const facts = Object.fromEntries(await history.locator('.jp-ExecExt-progressItem').evaluateAll(
    items => items.map(i => [i.dataset.key, i.querySelector('dd').textContent])));
  check(facts.attempts === `2 of ${maxAttempts} used, ${maxAttempts - 2} left`, `attempts: ${JSON.stringify(facts)}`);
  const max = await results.locator('.jp-ExecExt-score').getAttribute('data-max-score');
  check(facts.best === `${max} / ${max}` && facts.last === `${max} / ${max}`, `best and last: ${JSON.stringify(facts)}`);
  const bars = await history.locator('svg rect.jp-ExecExt-chartBar').count();
  check(bars === 2, `${bars} bars in the score chart`);
  const caption = await history.locator('figcaption').textContent();
  const liveText = await announced(results, /Submission history loaded: 2 attempts/);
  step('student: second submission, history of two', { score: fullScore, facts, caption, live: liveText });
  await audit('results with history', ['.jp-ExecExt-resultsPanel']);

  // A reload: the results panel is gone, the history comes back from the server.
  await page.reload();
  await page.locator('.jp-NotebookPanel').first().waitFor();
  await page.locator('.jp-NotebookPanel .jp-Toolbar-item[data-jp-item-name="submit-exercise"] button').waitFor();
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');
  check((await page.locator('.jp-ExecExt-submission').count()) === 0, 'results survived the reload in the page');
  await page.locator('.jp-NotebookPanel .jp-CodeCell').first().click();
  await fromPalette('Submission history');
  await page.waitForFunction(() => document.querySelectorAll('.jp-ExecExt-history .jp-ExecExt-attempt').length === 2);
  const listed = await attempts.allTextContents();
  check(/^Attempt 2: /.test(listed[0]) && /^Attempt 1: /.test(listed[1]), `history after reload: ${listed}`);
  step('student: history after a reload', { listed });

  // The student is not offered the Gradebook (the server answers 403 to it anyway); the same
  // palette does list the student's own command.
  const paletteInput = page.locator('.jp-ModalCommandPalette .lm-CommandPalette-input');
  const labels = () => page.locator('.jp-ModalCommandPalette .lm-CommandPalette-itemLabel').allTextContents();
  for (let i = 0; i < 10 && !(await paletteInput.isVisible()); i++) {
    await page.keyboard.press('Control+Shift+C');
    await paletteInput.waitFor({ timeout: 2000 }).catch(() => {});
  }
  await paletteInput.fill('Submission history', { timeout: 5000 });
  const control = await labels();
  check(control.includes('Submission history'), `the palette does not list Submission history: ${control}`);
  await paletteInput.fill('Gradebook', { timeout: 5000 });
  const offered = await labels();
  check(!offered.includes('Gradebook'), `the student is offered: ${offered}`);
  await page.keyboard.press('Escape');
  step('student: no Gradebook offered', { offered });

  // Open the first (wrong) attempt with the keyboard: its results replace the panel's.
  await attempts.nth(1).locator('button').focus();
  await page.keyboard.press('Enter');
  const past = results.locator('.jp-ExecExt-pastSubmission');
  await past.waitFor();
  const pastScore = await past.locator('.jp-ExecExt-score').textContent();
  check(pastScore === wrongScore, `attempt 1 shows ${pastScore}, was ${wrongScore}`);
  check((await past.getAttribute('data-status')) === 'partial', 'attempt 1 is not shown as partial');
  check(await past.evaluate(node => document.activeElement === node), 'the opened attempt did not take the focus');
  const failing = await past.locator('.jp-ExecExt-test[data-status="failed"]').count();
  check(failing > 0, 'attempt 1 shows no failing test');
  const code = await past.locator('.jp-ExecExt-pastCode pre').textContent();
  check(code.includes('// len(numbers)'), 'attempt 1 does not show the code submitted then');
  check((await attempts.nth(1).locator('button').getAttribute('aria-current')) === 'true', 'the opened attempt is not marked current');
  step('student: a past attempt opened', { score: pastScore, note: await past.locator('.jp-ExecExt-pastNote').textContent(), failing });
  // The picture: the end of the attempt's results, then the history below them.
  await results.evaluate(node => (node.scrollTop = node.scrollHeight));
  await screenshot('results-history.png', page.locator('.jp-MainAreaWidget:has(.jp-ExecExt-resultsPanel)'));
  await setTheme('JupyterLab Dark');
  await audit('results with history (dark)', ['.jp-ExecExt-resultsPanel']);
  await setTheme('JupyterLab Light');

  // -- the instructor ---------------------------------------------------------------------------
  await page.goto(`${instructorUrl}lab?token=${token}`);
  const card = page.locator('.jp-LauncherCard', { hasText: 'Gradebook' });
  await card.waitFor();
  await card.click();
  const book = page.locator('.jp-ExecExt-gradebook');
  await book.locator('.jp-ExecExt-gradebookTable tbody tr').first().waitFor();
  await book.locator('.jp-ExecExt-stats').waitFor();
  const loaded = await announced(book, /loaded/);
  const rowUsers = () => book.locator('tbody tr.jp-ExecExt-gradebookRow').evaluateAll(rows => rows.map(r => r.dataset.user));
  const users = await rowUsers();
  const columns = await book.locator('.jp-ExecExt-gradebookTable thead th').evaluateAll(ths => ths.map(th => th.dataset.column));
  check(users.length >= 3, `the gradebook shows ${users.length} students`);
  check(columns.includes(exercise), `no column for ${exercise}: ${columns}`);
  check(columns.length === 3, `columns besides the one exercise submitted to: ${columns}`);
  check(JSON.stringify(users) === JSON.stringify([...users].sort((a, b) => a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' }))),
    `not sorted by name at first: ${users}`);
  check((await book.locator('th[data-column="user"]').getAttribute('aria-sort')) === 'ascending', 'the name column is not marked ascending');
  step('instructor: gradebook from the launcher', { users, columns, live: loaded });

  // Sort by the exercise with the keyboard (Enter on its header), then again to reverse.
  const header = book.locator(`th[data-column="${exercise}"]`);
  await header.locator('button').focus();
  await page.keyboard.press('Enter');
  check((await header.getAttribute('aria-sort')) === 'descending', 'Enter did not sort descending');
  const scoresOf = async () => book.locator(`tbody td[data-exercise="${exercise}"]`).evaluateAll(tds => tds.map(td => td.dataset.score));
  const down = (await scoresOf()).filter(s => s !== '').map(Number);
  check(down.every((s, i) => i === 0 || down[i - 1] >= s), `not descending: ${down}`);
  check(await header.locator('button').evaluate(b => document.activeElement === b), 'the header lost the focus');
  await header.locator('button').click();
  check((await header.getAttribute('aria-sort')) === 'ascending', 'a second press did not reverse the order');
  const up = (await scoresOf()).filter(s => s !== '').map(Number);
  check(up.every((s, i) => i === 0 || up[i - 1] <= s), `not ascending: ${up}`);
  const sortedSay = await announced(book, /Sorted by/);
  step('instructor: sorted', { descending: down, ascending: up, live: sortedSay });


  // Exercises nobody submitted are left out until asked for.
  await book.getByLabel('Show exercises without submissions').check();
  const allColumns = await book.locator('.jp-ExecExt-gradebookTable thead th').count();
  await book.getByLabel('Show exercises without submissions').uncheck();
  check(allColumns > (await book.locator('.jp-ExecExt-gradebookTable thead th').count()), 'the empty exercises did not come and go');

  // Filter by name.
  const needle = users[users.length - 1].slice(0, 3);
  await book.getByLabel('Filter students').fill(needle);
  const filtered = await rowUsers();
  check(filtered.length >= 1 && filtered.length < users.length && filtered.every(u => u.toLowerCase().includes(needle.toLowerCase())),
    `filter ${needle}: ${filtered}`);
  step('instructor: filtered', { needle, filtered, status: await book.locator('.jp-ExecExt-gradebookStatus').textContent() });
  await book.getByLabel('Filter students').fill('');

  // CSV download: the header row and a line per student × exercise.
  const [download] = await Promise.all([page.waitForEvent('download'), book.getByRole('link', { name: 'Download CSV' }).click()]);
  const csvPath = join(artifacts, 'gradebook.csv');
  await download.saveAs(csvPath);
  const csv = readFileSync(csvPath, 'utf8').trim().split(/\r?\n/);
  check(csv.length >= 2 && /user/i.test(csv[0]), `CSV: ${csv.slice(0, 3)}`);
  step('instructor: CSV downloaded', { header: csv[0], lines: csv.length, file: download.suggestedFilename() });

  // Test statistics: bars, the table of the same numbers, the common failures.
  await book.getByLabel('Exercise', { exact: true }).selectOption(exercise);
  const stats = book.locator(`.jp-ExecExt-stats[data-exercise="${exercise}"]`);
  await stats.waitFor();
  const statRows = await stats.locator('.jp-ExecExt-statsTable tbody tr').evaluateAll(
    rows => rows.map(r => [...r.children].map(c => c.textContent)));
  const statBars = await stats.locator('svg rect.jp-ExecExt-chartBar').count();
  check(statRows.length > 0 && statBars === statRows.length, `${statBars} bars for ${statRows.length} tests`);
  const failures = await stats.locator('.jp-ExecExt-failure').allTextContents();
  check(failures.length > 0, 'no common failure message shown');
  step('instructor: test statistics', { rows: statRows, failures, summary: await stats.locator('.jp-ExecExt-statsSummary').textContent() });
  await audit('gradebook', ['.jp-ExecExt-gradebook']);
  await book.evaluate(node => {
    node.scrollTop = 0;
    node.querySelector('.jp-ExecExt-tableHost').scrollLeft = 0;
  });
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await screenshot('gradebook-panel.png', page.locator('.jp-MainAreaWidget:has(.jp-ExecExt-gradebook)'));

  // The palette opens it too; in the dark theme it keeps its contrast.
  await page.getByTitle(/^Close Gradebook/).first().click().catch(() => {});
  await fromPalette('Gradebook');
  await book.locator('.jp-ExecExt-gradebookTable tbody tr').first().waitFor();
  await setTheme('JupyterLab Dark');
  await book.locator('.jp-ExecExt-stats').waitFor();
  await audit('gradebook (dark)', ['.jp-ExecExt-gradebook']);
  step('instructor: gradebook from the palette, dark theme');

  // A reload puts it back where it was, loaded again from the server.
  await page.reload();
  await page.locator('.jp-ExecExt-gradebook .jp-ExecExt-gradebookTable tbody tr').first().waitFor();
  step('instructor: gradebook restored after a reload', { rows: await rowUsers() });
});
