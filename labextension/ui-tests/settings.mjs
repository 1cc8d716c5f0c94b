// The extension's settings in Debian's chromium, against a running JupyterLab and the real sandbox
// server. Started by tests/lab/test_settings_e2e.py, which sets E2E_URL, E2E_TOKEN, E2E_NOTEBOOK
// (an exercise notebook, so Submit shows), E2E_ARTIFACTS, E2E_CHROMIUM and E2E_POLL_S (the
// `statusPollInterval` the test wrote into the user's settings before JupyterLab started).
//   1. The poll interval from the settings file: docker/status is asked every E2E_POLL_S seconds.
//   2. In the Settings Editor, *Show the Submit button* off: the toolbar's Submit goes at once (no
//      reload), Run in sandbox stays, and axe-core finds nothing in the toolbar; on again: back.
//   3. In the Settings Editor, the poll interval raised to an hour: the polls stop at once.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { axeViolations } from './a11y.mjs';
import { check, finish, launch, newReport } from './browser.mjs';

const url = process.env.E2E_URL;
const token = process.env.E2E_TOKEN;
const notebook = process.env.E2E_NOTEBOOK;
const artifacts = process.env.E2E_ARTIFACTS;
const pollS = Number(process.env.E2E_POLL_S);
if (!url || !token || !notebook || !artifacts || !(pollS > 0)) {
  console.error('E2E_URL, E2E_TOKEN, E2E_NOTEBOOK, E2E_ARTIFACTS and E2E_POLL_S must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const report = newReport({ axe: [] });
const step = report.step;
const browser = await launch();
const page = browser.page;
/** When docker/status was asked (ms since the start of the test). */
const polls = [];
page.on('request', request => {
  if (/\/api\/exec\/v1\/docker\/status/.test(request.url())) {
    polls.push(Date.now() - report.started);
  }
});
const shot = name => page.screenshot({ path: join(artifacts, name) });
const audit = async state => {
  const { checked, violations } = await axeViolations(page);
  report.axe.push({ state, checked, violations: violations.length });
  check(violations.length === 0, `axe (${state}): ${JSON.stringify(violations, null, 2)}`);
};
/** Polls in the next `seconds` seconds, and the gaps between them (s). */
const pollsDuring = async seconds => {
  const from = Date.now() - report.started;
  await page.waitForTimeout(seconds * 1000);
  const seen = polls.filter(t => t >= from);
  const gaps = seen.slice(1).map((t, i) => Math.round((t - seen[i]) / 100) / 10);
  return { count: seen.length, gaps };
};

await finish(browser, report, artifacts, async () => {
  await page.goto(`${url}lab/tree/${notebook}?token=${token}`);
  const panel = page.locator('.jp-NotebookPanel').first();
  await panel.waitFor();
  const item = name => panel.locator(`.jp-Toolbar-item[data-jp-item-name="${name}"]`);
  await item('run-in-sandbox').locator('button').waitFor();
  await item('submit-exercise').locator('button').waitFor();
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');

  // 1. The interval from the settings file (the default is 10 s).
  const window = Math.max(4 * pollS + 1, 9);
  const atStart = await pollsDuring(window);
  check(atStart.count >= Math.floor(window / pollS) - 1,
    `${atStart.count} polls in ${window} s with statusPollInterval ${pollS} s (gaps ${atStart.gaps})`);
  check(atStart.gaps.every(gap => gap >= pollS - 0.5 && gap <= pollS + 1.5),
    `gaps between polls ${atStart.gaps} s, not about ${pollS} s`);
  step('status polled at the interval of the settings file', atStart);

  // 2. The Settings Editor (its form), beside the notebook: Submit's button off, then on.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Settings$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Settings Editor$/ }).click();
  const form = page.locator('.jp-SettingsPanel, .jp-SettingsEditor').first();
  await form.waitFor();
  await page.locator('.jp-PluginList-entry', { hasText: 'Sandbox (jupyter-exec-ext)' }).first().click();
  const showSubmit = page.getByLabel('Show the Submit button', { exact: true });
  await showSubmit.waitFor();
  check(await showSubmit.isChecked(), 'Show the Submit button is not on by default');
  await shot('settings-editor.png');
  await showSubmit.uncheck();
  // Back to the notebook, not reloaded: the button has gone, Run in sandbox is still there.
  await page.locator('.lm-TabBar-tab', { hasText: notebook }).first().click();
  await item('submit-exercise').waitFor({ state: 'hidden', timeout: 10_000 });
  check(await item('run-in-sandbox').isVisible(), 'Run in sandbox went with Submit');
  const hidden = await item('submit-exercise').evaluate(node => ({
    hidden: node.classList.contains('lm-mod-hidden'),
    width: node.getBoundingClientRect().width
  }));
  check(hidden.width === 0, `the hidden Submit still takes room: ${JSON.stringify(hidden)}`);
  await shot('submit-hidden.png');
  await audit('toolbar without Submit');
  step('Show the Submit button off: the toolbar button goes at once', hidden);

  await page.locator('.lm-TabBar-tab', { hasText: 'Settings' }).first().click();
  await showSubmit.check();
  await page.locator('.lm-TabBar-tab', { hasText: notebook }).first().click();
  await item('submit-exercise').locator('button').waitFor({ state: 'visible', timeout: 10_000 });
  await audit('toolbar with Submit again');
  step('Show the Submit button on: the toolbar button is back');

  // 3. The interval raised in the editor: no poll in the next few seconds (it was every pollS).
  await page.locator('.lm-TabBar-tab', { hasText: 'Settings' }).first().click();
  // The form's number field (its label is not tied to it, so by the id the form gives it).
  const interval = page.locator('input[id$="_statusPollInterval"]');
  await interval.fill('3600');
  await interval.press('Tab');
  await page.locator('.lm-TabBar-tab', { hasText: notebook }).first().click();
  // Saved once the editor has written the user's settings (it debounces its writes).
  await page.waitForFunction(
    async ({ url, token }) => {
      const answer = await fetch(`${url}lab/api/settings/jupyter-exec-ext:plugin?token=${token}`);
      const data = await answer.json();
      return data.settings?.statusPollInterval === 3600;
    },
    { url, token },
    { polling: 250, timeout: 15_000 }
  );
  await page.waitForTimeout(500);
  const after = await pollsDuring(Math.max(3 * pollS, 6));
  check(after.count === 0, `still polling after the interval was raised: ${JSON.stringify(after)}`);
  step('poll interval raised in the Settings Editor: polling slows down at once', after);
});
