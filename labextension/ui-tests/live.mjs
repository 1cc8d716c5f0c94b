// End-to-end test of live sandbox runs in Debian's chromium, against a running JupyterLab whose
// server runs code in the real Docker sandbox. Started by tests/lab/test_live_e2e.py, which sets:
//   E2E_URL (base URL with trailing slash), E2E_TOKEN, E2E_NOTEBOOK (path under root_dir),
//   E2E_ARTIFACTS (screenshots and report.json), E2E_CHROMIUM (default /usr/bin/chromium),
//   E2E_FLOW ("live": streaming, Stop, ■, input; "figure": a matplotlib figure),
//   E2E_DOCS_DIR (optional: the README's screenshots are written there too).
// Every wait is for a state on the page, bounded so a broken build fails instead of hanging.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { check, finish, launch, newReport, setEditor } from './browser.mjs';

const url = process.env.E2E_URL;
const token = process.env.E2E_TOKEN;
const notebook = process.env.E2E_NOTEBOOK;
const artifacts = process.env.E2E_ARTIFACTS;
const flow = process.env.E2E_FLOW || 'live';
const docsDir = process.env.E2E_DOCS_DIR;
if (!url || !token || !notebook || !artifacts) {
  console.error('E2E_URL, E2E_TOKEN, E2E_NOTEBOOK and E2E_ARTIFACTS must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const TICKER = `import time
for i in range(4):
    print("tick", i, flush=True)
    time.sleep(1)
print("done")
`;
const LOOP = `n = 0
while True:
    n += 1
`;
const ASK = `name = input("Name? ")
age = input("Age? ")
print(f"Hello {name}, you are {age}")
`;
const ASK_EOF = `try:
    input("More? ")
except EOFError:
    print("got end of input")
`;
const FIGURE = `import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.title("squares")
plt.show()
print("plotted")
`;

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

/**
 * axe-core's WCAG 2.1 A/AA rules on the sandbox box. JupyterLab's zero-height body makes axe skip
 * its contrast rule (axe-core issue 3996), so the page gets a height first. The status badge's
 * colours are the theme work's and audited there; here it is left out.
 */
async function audit(name, { withBadge = false } = {}) {
  if (!(await page.evaluate(() => 'axe' in window))) {
    await page.addScriptTag({ content: axeSource });
    await page.addStyleTag({ content: 'html, body { height: 100% !important; }' });
  }
  const violations = await page.evaluate(async withBadge => {
    const result = await window.axe.run(
      { include: [['.jp-ExecExt-live']], exclude: withBadge ? [] : [['.jp-ExecExt-badge']] },
      { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }
    );
    return result.violations.map(v => ({ id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }));
  }, withBadge);
  const theme = await page.evaluate(() => document.body.dataset.jpThemeName);
  report.a11y[`${name} (${theme})`] = violations;
  check(violations.length === 0, `${name}: accessibility violations: ${JSON.stringify(violations)}`);
}

await finish(browser, report, artifacts, async () => {
  await page.goto(`${url}lab/tree/${notebook}?token=${token}`);
  const panel = page.locator('.jp-NotebookPanel').first();
  await panel.waitFor();
  const runButton = panel.locator('.jp-Toolbar-item[data-jp-item-name="run-in-sandbox"] button');
  await runButton.waitFor();
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready');
  const cell = panel.locator('.jp-CodeCell').first();
  const box = cell.locator('.jp-ExecExt-live');
  const badge = box.locator('.jp-ExecExt-badge');
  const stdout = box.locator('.jp-ExecExt-stdout pre');
  const announcer = box.locator('.jp-ExecExt-announcer');
  /** Runs the first cell's code from the toolbar button (focus then stays on the button). */
  const runFromToolbar = async source => {
    await setEditor(page, cell, source);
    await runButton.focus();
    await page.keyboard.press('Enter');
    await box.locator('.jp-ExecExt-badge[data-status="pending"]').waitFor();
  };
  const focusIsOnRunButton = () =>
    page.evaluate(() => !!document.activeElement?.closest('[data-jp-item-name="run-in-sandbox"]'));

  if (flow === 'figure') {
    await runFromToolbar(FIGURE);
    await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.classList.contains('jp-ExecExt-run'), null, { timeout: 60_000 });
    const status = await box.getAttribute('data-status');
    check(status === 'ok', `the figure run ended with ${status}: ${await box.textContent()}`);
    const image = box.locator('img.jp-ExecExt-figureImage').first();
    await image.waitFor();
    const size = await image.evaluate(img => ({ width: img.naturalWidth, height: img.naturalHeight, alt: img.alt }));
    check(size.width > 100 && size.height > 100, `the figure did not decode: ${JSON.stringify(size)}`);
    check(/Figure 1/.test(size.alt), `no alt text: ${size.alt}`);
    check((await stdout.textContent()).includes('plotted'), 'stdout of the figure run is missing');
    await audit('figure');
    step('matplotlib figure shown inline', { ...size, screenshot: await screenshot('live-figure.png', cell) });
    return;
  }

  // 1. Streaming: lines appear while the program still runs; elapsed time against the limit.
  const sent = Date.now();
  await runFromToolbar(TICKER);
  check(await focusIsOnRunButton(), 'focus left the Run button when the run started');
  check((await runButton.getAttribute('aria-disabled')) === 'true', 'the busy Run button is not aria-disabled');
  check((await announcer.getAttribute('aria-busy')) === 'true', 'the live region is not busy during the run');
  await page.waitForFunction(() => /tick 0/.test(document.querySelector('.jp-ExecExt-live .jp-ExecExt-stdout pre')?.textContent ?? ''));
  const firstLineAfter = Date.now() - sent;
  const stillRunning = await box.evaluate(node => !node.classList.contains('jp-ExecExt-run'));
  check(stillRunning, 'the first line arrived only when the run had ended');
  await page.waitForFunction(() => /elapsed \d+(\.\d)? s of \d+ s limit/.test(document.querySelector('.jp-ExecExt-live .jp-ExecExt-facts')?.textContent ?? ''));
  const facts = await box.locator('.jp-ExecExt-facts').textContent();
  // The status item follows the run at once, not on its 10 s poll.
  await page.waitForFunction(() => /in flight/.test(document.querySelector('.jp-ExecExt-status')?.textContent ?? ''), null, { timeout: 4000 });
  await page.waitForFunction(() => /tick 1/.test(document.querySelector('.jp-ExecExt-live .jp-ExecExt-stdout pre')?.textContent ?? ''));
  check(await box.locator('.jp-ExecExt-stop').isVisible(), 'no Stop button while running');
  await audit('running');
  const midShot = await screenshot('live-streaming.png', cell);
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.classList.contains('jp-ExecExt-run'));
  const endedAfter = Date.now() - sent;
  check((await box.getAttribute('data-status')) === 'ok', `ticker status ${await box.getAttribute('data-status')}`);
  const ticked = await stdout.textContent();
  check(ticked === 'tick 0\ntick 1\ntick 2\ntick 3\ndone\n', `unexpected ticker output ${JSON.stringify(ticked)}`);
  check(endedAfter - firstLineAfter >= 2500, `first line ${firstLineAfter} ms, end ${endedAfter} ms: not streamed`);
  check(/^Sandbox run: ok, \d+ ms$/.test(await announcer.textContent()), `summary: ${await announcer.textContent()}`);
  check((await announcer.getAttribute('aria-busy')) === 'false', 'the live region is still busy');
  check(await focusIsOnRunButton(), 'focus left the Run button when the run ended');
  check((await runButton.getAttribute('aria-disabled')) === 'false', 'the Run button stayed aria-disabled');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-status')?.textContent === 'Sandbox: ready', null, { timeout: 4000 });
  await audit('ended ok');
  step('output streams while the program runs', { firstLineAfter, endedAfter, facts, screenshot: midShot });

  // 2. Stop (the box's button, by keyboard) ends an infinite loop: cancelled, labelled "stopped".
  await runFromToolbar(LOOP);
  await box.locator('.jp-ExecExt-badge', { hasText: 'running…' }).waitFor();
  const stop = box.locator('.jp-ExecExt-stop');
  check((await stop.getAttribute('aria-label')) === 'Stop the sandbox run', 'Stop has no label');
  await stop.focus();
  const pressed = Date.now();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.dataset.status === 'cancelled', null, { timeout: 5000 });
  const stoppedAfter = Date.now() - pressed;
  check((await badge.textContent()) === 'stopped', `cancelled badge reads ${await badge.textContent()}`);
  check(/^Sandbox run: stopped, \d+ ms$/.test(await announcer.textContent()), `summary: ${await announcer.textContent()}`);
  const focusAfterStop = await page.evaluate(() => document.activeElement?.closest('[data-jp-item-name]')?.getAttribute('data-jp-item-name') ?? document.activeElement?.tagName);
  check(focusAfterStop === 'run-in-sandbox', `focus after Stop went to ${focusAfterStop}, not back to Run`);
  await audit('stopped', { withBadge: true });
  step('Stop ends an infinite loop', { stoppedAfter, screenshot: await screenshot('live-stopped.png', cell) });

  // The rest runs in the dark theme, so the box's audits cover both themes.
  await page.keyboard.press('Control+Shift+C');
  await page.locator('.lm-CommandPalette-input').first().fill('JupyterLab Dark');
  await page.locator('.lm-CommandPalette-item.lm-mod-active', { hasText: 'JupyterLab Dark' }).waitFor();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.jpThemeName === 'JupyterLab Dark');
  await audit('stopped', { withBadge: true });
  await runButton.focus();

  // 3. The kernel toolbar's ■ stops the sandbox run too.
  await runFromToolbar(LOOP);
  await box.locator('.jp-ExecExt-badge', { hasText: 'running…' }).waitFor();
  await panel.locator('.jp-Toolbar-item[data-jp-item-name="interrupt"] button').click();
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.dataset.status === 'cancelled', null, { timeout: 5000 });
  step('the kernel toolbar ■ stops the sandbox run');

  // 3b. The palette command does too.
  await runFromToolbar(LOOP);
  await box.locator('.jp-ExecExt-badge', { hasText: 'running…' }).waitFor();
  await page.keyboard.press('Control+Shift+C');
  const palette = page.locator('.lm-CommandPalette-input').first();
  await palette.waitFor();
  await palette.fill('Stop sandbox run');
  await page.locator('.lm-CommandPalette-item.lm-mod-active', { hasText: 'Stop sandbox run' }).waitFor();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.dataset.status === 'cancelled', null, { timeout: 5000 });
  step('the palette command stops the sandbox run');

  // 4. The input field, as a keyboard user meets it: labelled with the prompt, focused, reachable
  //    (audited and photographed here, then the run is stopped from the keyboard).
  await runFromToolbar(ASK_EOF);
  const field = box.locator('input.jp-ExecExt-inputField');
  await field.waitFor();
  check((await box.locator('label.jp-ExecExt-inputLabel').textContent()) === 'More? ', 'the field is not labelled by the prompt');
  check(await field.evaluate(el => el === document.activeElement), 'the input field did not take focus');
  check(!!(await field.getAttribute('aria-describedby')), 'the field has no description of its keys');
  await audit('input');
  const inputShot = await screenshot('live-input.png', cell);
  await page.keyboard.press('Shift+Tab');
  check(await page.evaluate(() => document.activeElement?.classList.contains('jp-ExecExt-stop')), 'Stop is not reachable by keyboard from the field');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.dataset.status === 'cancelled', null, { timeout: 5000 });
  step('the input field is labelled, focused and keyboard-reachable', { screenshot: inputShot });

  // 5. input() with two prompts: a labelled field each time, Enter sends the line.
  await runFromToolbar(ASK);
  await field.waitFor();
  const label1 = await box.locator('label.jp-ExecExt-inputLabel').textContent();
  check(label1 === 'Name? ', `first prompt label ${JSON.stringify(label1)}`);
  check(await field.evaluate(el => el === document.activeElement), 'the input field did not take focus');
  await page.keyboard.type('Ann');
  await page.keyboard.press('Enter');
  await box.locator('label.jp-ExecExt-inputLabel', { hasText: 'Age?' }).waitFor();
  check(await field.evaluate(el => el === document.activeElement), 'the second input field did not take focus');
  await page.keyboard.type('7');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.classList.contains('jp-ExecExt-run'));
  check((await box.getAttribute('data-status')) === 'ok', `input run status ${await box.getAttribute('data-status')}`);
  const transcript = await stdout.textContent();
  check(transcript.includes('Hello Ann, you are 7'), `input run output ${JSON.stringify(transcript)}`);
  check(/Name\? Ann\n/.test(transcript) && /Age\? 7\n/.test(transcript), `answers not kept after their prompts: ${JSON.stringify(transcript)}`);
  step('input() with two prompts', { transcript });

  // 6. Ctrl+D ends the input: the program's read gets end of file.
  await runFromToolbar(ASK_EOF);
  await field.waitFor();
  await page.keyboard.press('Control+d');
  await page.waitForFunction(() => document.querySelector('.jp-ExecExt-live')?.classList.contains('jp-ExecExt-run'));
  const eofOut = await stdout.textContent();
  check(eofOut.includes('got end of input'), `EOF run output ${JSON.stringify(eofOut)}`);
  step('Ctrl+D ends the input', { stdout: eofOut });
});
