// What the browser tests share: Debian's chromium with a fresh profile, the report with its steps,
// checks, CodeMirror input, and the end of a run (report.json, failure.png, exit code).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** Headless chromium (E2E_CHROMIUM, default /usr/bin/chromium) with a profile of its own. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'exec-ext-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu'],
    viewport: { width: 1400, height: 900 }
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60_000);
  return { context, page, profile };
}

/** A report whose `step` records what passed (and when) and prints it. */
export function newReport(extra = {}) {
  const started = Date.now();
  const report = { steps: [], ...extra };
  report.step = (name, details = {}) => {
    report.steps.push({ name, seconds: Math.round((Date.now() - started) / 100) / 10, ...details });
    console.log(`ok: ${name}`, JSON.stringify(details));
  };
  report.started = started;
  return report;
}

/** Replaces the text of a CodeMirror editor (insertText: no auto-indent, no completion). */
export async function setEditor(page, editor, source) {
  await editor.locator('.cm-content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(source);
}

/**
 * Runs `flow`, then writes report.json (and failure.png if it threw) into `artifacts`, closes
 * the browser and exits with 0 or 1.
 */
export async function finish(browser, report, artifacts, flow) {
  let failed = false;
  try {
    await flow();
    report.result = 'passed';
  } catch (error) {
    failed = true;
    report.result = 'failed';
    report.error = String(error && error.stack ? error.stack : error);
    console.error(report.error);
    await browser.page.screenshot({ path: join(artifacts, 'failure.png') }).catch(() => {});
  } finally {
    report.seconds = Math.round((Date.now() - report.started) / 1000);
    delete report.step;
    delete report.started;
    writeFileSync(join(artifacts, 'report.json'), JSON.stringify(report, null, 2));
    await browser.context.close();
    rmSync(browser.profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}
