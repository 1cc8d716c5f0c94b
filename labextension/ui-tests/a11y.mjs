// Accessibility checks the browser tests share: axe-core (WCAG 2.1 A and AA rules) over the
// extension's own nodes, and the accessible name/description helpers the keyboard flow reads.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

/** The extension's own UI: toolbar buttons, the sandbox box, the Results panel, the status item. */
export const OUR_NODES = [
  '[data-jp-item-name="run-in-sandbox"]',
  '[data-jp-item-name="submit-exercise"]',
  '.jp-ExecExt-cellOutput',
  '.jp-ExecExt-resultsPanel',
  '.jp-ExecExt-statusItem',
  '.jp-ExecExt-toolbarStatus'
];

/**
 * Runs axe-core over those of `selectors` on the page and returns its violations (empty: none).
 * JupyterLab's `<body>` has no height, so axe would skip the contrast rule (axe-core issue 3996):
 * `html, body {height: 100%}` first, as the audit did.
 */
export async function axeViolations(page, selectors = OUR_NODES) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
    await page.addScriptTag({ path: AXE });
  }
  // A toolbar button (`jp-button`) copies its label into the button in its shadow root a frame
  // after a change (*Running in sandbox…* → *Run in sandbox*): audit the settled state.
  await page.waitForFunction(selectors => [...document.querySelectorAll(selectors.join(','))]
    .flatMap(node => [...node.querySelectorAll('jp-button')])
    .every(host => !host.shadowRoot?.querySelector('button') ||
      host.shadowRoot.querySelector('button').getAttribute('aria-label') === host.getAttribute('aria-label')),
  selectors, { timeout: 5_000 });
  return page.evaluate(async selectors => {
    document.documentElement.style.height = '100%';
    document.body.style.height = '100%';
    const present = selectors.filter(s => document.querySelector(s));
    if (!present.length) {
      throw new Error(`none of our nodes is on the page: ${selectors.join(', ')}`);
    }
    const result = await window.axe.run(
      { include: present.map(s => [s]) },
      { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] }
    );
    return {
      checked: present,
      violations: result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => ({ target: n.target.join(' '), summary: n.failureSummary }))
      }))
    };
  }, selectors);
}
