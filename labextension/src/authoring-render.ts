/**
 * Pure parts of the authoring UI, unit-tested without JupyterLab: schema errors as field
 * messages, the validator's answer, and the read-only preview of a student copy.
 */
import type { ErrorObject } from 'ajv';

import { METADATA_KEY } from './notebook.js';
import { el, renderTest } from './render.js';
import { ITestResult } from './types.js';

export interface IValidation {
  exercise_id: string;
  ok: boolean;
  problem: string;
  warning: string;
  solution: IGraded | null;
  starter: IGraded | null;
  wrong_solutions?: IWrongSolution[];
}

/** A known-wrong answer the exercise carries, as the validator graded it. */
export interface IWrongSolution {
  name: string;
  reason: string;
  score: number;
  max_score: number;
  caught: boolean;
  caught_by_visible: boolean;
  caught_by: { name: string; hidden: boolean; status: string }[];
}

export interface IGraded {
  status: string;
  score: number;
  max_score: number;
  stderr: string;
  tests: ITestResult[];
}

/** Schema errors (and duplicate test names, which the server refuses too) as field → message. */
export function describeErrors(meta: any, errors: ErrorObject[] | null | undefined): Map<string, string> {
  const found = new Map<string, string>();
  for (const error of errors ?? []) {
    let path = error.instancePath;
    let message = error.message ?? 'is not valid';
    if (error.keyword === 'required') {
      path = `${path}/${(error.params as any).missingProperty}`;
      message = 'is required';
    } else if (error.keyword === 'enum') {
      message = `must be one of ${(error.params as any).allowedValues.join(', ')}`;
    } else if (error.keyword === 'pattern' && path === '/exercise_id') {
      message = "use lowercase letters, digits, '-' and '_' (at most 64), starting with a letter or digit";
    } else if (error.keyword === 'minItems' && path === '/tests') {
      message = 'an exercise needs at least one test';
    } else if (error.keyword === 'minLength') {
      message = 'must not be empty';
    }
    if (!found.has(path)) {
      found.set(path, message);
    }
  }
  const names = new Set<string>();
  (Array.isArray(meta?.tests) ? meta.tests : []).forEach((test: any, index: number) => {
    if (typeof test?.name === 'string' && names.has(test.name) && !found.has(`/tests/${index}/name`)) {
      found.set(`/tests/${index}/name`, 'another test has the same name');
    }
    names.add(test?.name);
  });
  return found;
}

/** The validator's answer: the reference's and the starter's result on every test. */
export function renderValidation(doc: Document, answer: IValidation): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-validation');
  root.dataset.ok = String(answer.ok);
  root.appendChild(
    el(
      doc,
      'div',
      `jp-ExecExt-validationSummary ${answer.ok ? 'jp-mod-passed' : 'jp-mod-failed'}`,
      answer.ok ? 'Valid: the reference solution passes every test.' : `Not valid: ${answer.problem}.`
    )
  );
  if (answer.warning) {
    root.appendChild(el(doc, 'div', 'jp-ExecExt-validationWarning', `Warning: ${answer.warning}.`));
  }
  for (const [label, graded] of [
    ['Reference solution', answer.solution],
    ['Starter code', answer.starter]
  ] as const) {
    if (!graded) {
      continue;
    }
    const section = el(doc, 'section', 'jp-ExecExt-validationPart');
    section.dataset.part = label === 'Reference solution' ? 'solution' : 'starter';
    section.appendChild(el(doc, 'h4', '', `${label}: ${graded.score} / ${graded.max_score} points`));
    const list = el(doc, 'ul', 'jp-ExecExt-tests');
    for (const test of graded.tests) {
      list.appendChild(renderTest(doc, test, true)); // the instructor sees hidden tests in full
    }
    section.appendChild(list);
    root.appendChild(section);
  }
  const wrong = answer.wrong_solutions ?? [];
  if (wrong.length) {
    root.appendChild(renderWrongSolutions(doc, wrong));
  }
  return root;
}

/** Which tests catch each known-wrong answer: one row each, a visible catch first. */
function renderWrongSolutions(doc: Document, wrong: IWrongSolution[]): HTMLElement {
  const section = el(doc, 'section', 'jp-ExecExt-validationPart');
  section.dataset.part = 'wrong';
  const byVisible = wrong.filter(w => w.caught_by_visible).length;
  section.appendChild(
    el(
      doc,
      'h4',
      '',
      `Wrong solutions: ${wrong.filter(w => w.caught).length} of ${wrong.length} caught, ${byVisible} by a visible test`
    )
  );
  const table = el(doc, 'table', 'jp-ExecExt-wrongSolutions');
  table.appendChild(el(doc, 'caption', '', 'Each known-wrong answer, its score and the tests that catch it'));
  const head = el(doc, 'tr', '');
  for (const title of ['Wrong solution', 'Score', 'Caught by']) {
    const th = el(doc, 'th', '', title);
    th.setAttribute('scope', 'col');
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const w of wrong) {
    const row = el(doc, 'tr', '');
    row.dataset.caught = String(w.caught);
    const name = el(doc, 'th', '', w.reason ? `${w.name}: ${w.reason}` : w.name);
    name.setAttribute('scope', 'row');
    row.appendChild(name);
    row.appendChild(el(doc, 'td', '', `${w.score} / ${w.max_score}`));
    const tests = [...w.caught_by]
      .sort((a, b) => Number(a.hidden) - Number(b.hidden))
      .map(t => (t.hidden ? `${t.name} (hidden)` : t.name));
    row.appendChild(
      el(
        doc,
        'td',
        w.caught ? '' : 'jp-mod-failed',
        w.caught ? tests.join(', ') : 'nothing: this wrong answer scores full marks'
      )
    );
    table.appendChild(row);
  }
  section.appendChild(table);
  return section;
}

/** The student copy, read-only: each cell as students will see it, and the visible tests. */
export function renderPreview(
  doc: Document,
  nb: any,
  render: (markdown: string, host: HTMLElement) => void
): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-preview');
  root.appendChild(
    el(
      doc,
      'p',
      'jp-ExecExt-previewNote',
      'Preview of the student copy (read-only): no reference solution, no hidden tests.'
    )
  );
  for (const cell of nb.cells ?? []) {
    const source = Array.isArray(cell.source) ? cell.source.join('') : String(cell.source ?? '');
    const box = el(doc, 'div', `jp-ExecExt-previewCell jp-ExecExt-preview-${cell.cell_type}`);
    const role = cell.metadata?.[METADATA_KEY]?.role ?? (cell.metadata?.editable === false ? 'read-only' : null);
    if (role) {
      box.appendChild(el(doc, 'span', 'jp-ExecExt-roleBadge', role));
    }
    if (cell.cell_type === 'markdown') {
      const host = el(doc, 'div', 'jp-ExecExt-previewMarkdown');
      render(source, host);
      box.appendChild(host);
    } else {
      box.appendChild(el(doc, 'pre', 'jp-ExecExt-pre', source));
    }
    root.appendChild(box);
  }
  const tests = nb.metadata?.[METADATA_KEY]?.tests ?? [];
  root.appendChild(el(doc, 'h3', '', `Tests students can see (${tests.length})`));
  const list = el(doc, 'ul', 'jp-ExecExt-previewTests');
  for (const test of tests) {
    list.appendChild(el(doc, 'li', '', test.name));
  }
  root.appendChild(list);
  return root;
}
