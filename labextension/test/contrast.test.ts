// Contrast of the extension's own colours (style/base.css), WCAG 2.1 AA 1.4.3: every text colour
// against every background it is drawn on, in JupyterLab's light and dark themes. The browser
// tests run axe-core over the real page as well; this catches a bad colour before any browser.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const css = readFileSync(join(__dirname, '..', '..', 'style', 'base.css'), 'utf8');

/** The `--jp-ExecExt-*` variables of the rule whose selector contains `selector`. */
function variables(selector: string): Record<string, string> {
  const rule = new RegExp(`${selector.replace(/[[\]']/g, m => `\\${m}`)}\\s*\\{([^}]*)\\}`).exec(css);
  assert.ok(rule, `no rule for ${selector} in base.css`);
  const vars: Record<string, string> = {};
  for (const match of rule[1].matchAll(/--jp-ExecExt-([\w-]+):\s*(#[0-9a-fA-F]{6})/g)) {
    vars[match[1]] = match[2];
  }
  return vars;
}

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map(c => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

// The theme surfaces our text sits on (layout-color0..2, the cell editor background), from
// JupyterLab 4's theme-light-extension and theme-dark-extension.
const SURFACES = {
  light: ['#ffffff', '#f5f5f5', '#eeeeee'],
  dark: ['#111111', '#212121', '#424242']
};

const THEMES = {
  light: variables("body[data-jp-theme-light='true']"),
  dark: variables("body[data-jp-theme-light='false']")
};

test('the formula matches known WCAG values', () => {
  assert.equal(contrast('#ffffff', '#000000').toFixed(1), '21.0');
  // The failing pills the audit found: white on #f57c00 and on #388e3c.
  assert.ok(Math.abs(contrast('#ffffff', '#f57c00') - 2.7) < 0.05);
  assert.ok(Math.abs(contrast('#ffffff', '#388e3c') - 4.11) < 0.02);
});

for (const [theme, vars] of Object.entries(THEMES)) {
  test(`${theme} theme: every pill, text and highlight pair reaches 4.5:1`, () => {
    assert.ok(Object.keys(vars).length >= 12, `too few colours parsed: ${JSON.stringify(vars)}`);
    const pairs: [string, string, string][] = [];
    for (const bg of ['ok-bg', 'error-bg', 'pending-bg', 'neutral-bg']) {
      pairs.push([`pill-fg on ${bg}`, vars['pill-fg'], vars[bg]]);
    }
    for (const fg of ['text', 'muted', 'ok-fg', 'error-fg']) {
      for (const surface of SURFACES[theme as 'light' | 'dark']) {
        pairs.push([`${fg} on ${surface}`, vars[fg], surface]);
      }
    }
    for (const bg of ['highlight-bg', 'added-bg', 'removed-bg', 'stderr-bg']) {
      pairs.push([`text on ${bg}`, vars.text, vars[bg]]);
      pairs.push([`muted on ${bg}`, vars.muted, vars[bg]]);
    }
    const failing = pairs.filter(([, fg, bg]) => !(contrast(fg, bg) >= 4.5))
      .map(([name, fg, bg]) => `${name}: ${contrast(fg, bg).toFixed(2)}:1`);
    assert.deepEqual(failing, []);
  });
}
