/**
 * Authoring in instructor mode: a role badge on every exercise cell and commands that set the
 * role; the Exercise panel that edits the notebook's `jupyter_exec` metadata (tests included)
 * under the exercise JSON schema as the instructor types, and validates, previews and releases
 * through the server's `authoring/` routes. The metadata stays the storage format: the panel
 * writes it only when it is valid, and redraws from it when it changes elsewhere.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { CodeEditor, CodeEditorWrapper, IEditorServices } from '@jupyterlab/codeeditor';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Panel, Widget } from '@lumino/widgets';
import Ajv2020 from 'ajv/dist/2020';
import type { ValidateFunction } from 'ajv';

import { describeErrors, IValidation, renderValidation } from './authoring-render.js';
import { METADATA_KEY } from './notebook.js';
import { requestAPI } from './request.js';
import { ROLE_CHOICES, RoleChoice } from './roles.js';

/** Asks for a role in a dialog (the cell toolbar's *Role* button); null when cancelled. */
export async function askRole(current: string | null): Promise<RoleChoice | null> {
  const body = new Widget();
  const label = document.createElement('label');
  label.textContent = 'Role of the selected cells';
  label.className = 'jp-ExecExt-fieldLabel';
  const select = document.createElement('select');
  select.className = 'jp-mod-styled';
  for (const choice of ROLE_CHOICES) {
    const option = document.createElement('option');
    option.value = choice.id;
    option.textContent = `${choice.label}: ${choice.help}`;
    option.selected = choice.id === (current ?? 'none');
    select.appendChild(option);
  }
  label.appendChild(select);
  body.node.appendChild(label);
  const result = await showDialog({
    title: 'Exercise role',
    body,
    focusNodeSelector: 'select',
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Set role' })]
  });
  return result.button.accept ? (select.value as RoleChoice) : null;
}

// -- the Exercise panel -------------------------------------------------------------------------

interface ITestDraft {
  name: string;
  test_code: string;
  expected_output?: string | null;
  points?: number;
  hidden?: boolean;
  timeout?: number;
  compare?: string;
  tolerance?: number;
}

let schemaValidator: Promise<ValidateFunction> | null = null;

/** The server's exercise schema, compiled once (draft 2020-12, as the server validates it). */
export function exerciseValidator(): Promise<ValidateFunction> {
  if (!schemaValidator) {
    schemaValidator = requestAPI<object>('authoring/schema').then(schema =>
      new Ajv2020({ allErrors: true, strict: false }).compile(schema)
    );
    schemaValidator.catch(() => (schemaValidator = null));
  }
  return schemaValidator;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

let fieldCounter = 0;

/** A labelled field with the place its schema error appears (linked for screen readers). */
function field(
  labelText: string,
  input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  path: string,
  help?: string
): HTMLElement {
  const id = `jp-ExecExt-field-${++fieldCounter}`;
  const wrap = el('div', 'jp-ExecExt-field');
  const label = el('label', 'jp-ExecExt-fieldLabel', labelText);
  label.htmlFor = id;
  input.id = id;
  input.dataset.path = path;
  const error = el('div', 'jp-ExecExt-fieldError');
  error.id = `${id}-error`;
  error.dataset.errorFor = path;
  const described = [error.id];
  wrap.append(label, input);
  if (help) {
    const hint = el('div', 'jp-ExecExt-fieldHelp', help);
    hint.id = `${id}-help`;
    described.push(hint.id);
    wrap.appendChild(hint);
  }
  input.setAttribute('aria-describedby', described.join(' '));
  wrap.appendChild(error);
  return wrap;
}

function input(type: string, value: string): HTMLInputElement {
  const node = el('input', 'jp-mod-styled jp-ExecExt-input');
  node.type = type;
  node.value = value;
  return node;
}

function button(text: string, label?: string): HTMLButtonElement {
  const node = el('button', 'jp-Button jp-mod-styled jp-mod-reject jp-ExecExt-button', text);
  node.type = 'button';
  if (label) {
    node.setAttribute('aria-label', label);
  }
  return node;
}

/**
 * The Exercise panel of one notebook: id, title and tests, edited under the schema; Validate,
 * Preview as student, Release. Opened beside the notebook in instructor mode.
 */
export class ExercisePanel extends Panel {
  private draft: any = null;
  private writing = false;
  private validate: ValidateFunction | null = null;
  private readonly head = new Widget();
  private readonly testsBox = new Panel();
  private readonly foot = new Widget();
  private readonly status = el('div', 'jp-ExecExt-saveStatus');
  private readonly results = el('div', 'jp-ExecExt-authoringResults');

  constructor(
    private readonly notebook: NotebookPanel,
    private readonly editors: IEditorServices,
    private readonly openPreview: (notebook: any, title: string) => void
  ) {
    super();
    this.addClass('jp-ExecExt-exercisePanel');
    this.testsBox.addClass('jp-ExecExt-testsBox');
    this.status.setAttribute('role', 'status');
    this.results.setAttribute('role', 'status');
    this.results.setAttribute('aria-live', 'polite');
    // Actions and their results right under the id and title, in sight while tests are edited.
    this.addWidget(this.head);
    this.addWidget(this.foot);
    this.addWidget(this.testsBox);
    this.buildFoot();
    notebook.model?.metadataChanged.connect(() => {
      if (!this.writing) {
        this.load();
      }
    });
    void exerciseValidator().then(
      validate => {
        this.validate = validate;
        this.load();
      },
      error => this.say(`The exercise schema could not be loaded: ${(error as Error).message}`, true)
    );
    this.load();
  }

  /** Redraws the panel from the notebook's metadata. */
  load(): void {
    const meta = this.notebook.model?.getMetadata(METADATA_KEY);
    this.draft = meta && typeof meta === 'object' ? JSON.parse(JSON.stringify(meta)) : null;
    this.render();
  }

  private say(text: string, error = false): void {
    if (this.status.textContent === text) {
      return; // a live region: say a state once, not at every keystroke
    }
    this.status.textContent = text;
    this.status.dataset.state = error ? 'error' : 'ok';
  }

  /** Checks the draft; writes it into the notebook's metadata only when it is valid. */
  private commit(): void {
    if (!this.validate) {
      this.say('Not saved: the exercise schema is not loaded yet.', true);
      return;
    }
    this.validate(this.draft);
    const errors = describeErrors(this.draft, this.validate.errors);
    for (const node of Array.from(this.node.querySelectorAll<HTMLElement>('[data-error-for]'))) {
      node.textContent = errors.get(node.dataset.errorFor!) ?? '';
    }
    for (const node of Array.from(this.node.querySelectorAll<HTMLElement>('[data-path]'))) {
      node.setAttribute('aria-invalid', errors.has(node.dataset.path!) ? 'true' : 'false');
    }
    if (errors.size) {
      const [path, message] = errors.entries().next().value as [string, string];
      const where =
        path
          .replace(/^\/tests\/(\d+)/, (_, i) => `test ${Number(i) + 1}`)
          .replace(/^\//, '')
          .replace(/\//g, ' ') || 'exercise';
      const more = errors.size > 1 ? ` (and ${errors.size - 1} more)` : '';
      this.say(`Not saved until fixed: ${where} ${message}${more}.`, true);
      return;
    }
    const model = this.notebook.model;
    if (JSON.stringify(model?.getMetadata(METADATA_KEY)) === JSON.stringify(this.draft)) {
      this.say('Saved in the notebook metadata.'); // nothing new: the notebook stays unmodified
      return;
    }
    this.writing = true;
    try {
      model?.setMetadata(METADATA_KEY, JSON.parse(JSON.stringify(this.draft)));
    } finally {
      this.writing = false;
    }
    this.say('Saved in the notebook metadata (save the notebook to keep it).');
  }

  private render(): void {
    for (const widget of [...this.testsBox.widgets]) {
      widget.dispose();
    }
    this.head.node.replaceChildren();
    const title = el('h2', 'jp-ExecExt-panelTitle', `Exercise: ${this.notebook.title.label}`);
    this.head.node.appendChild(title);
    if (!this.draft) {
      this.head.node.appendChild(
        el(
          'p',
          '',
          'This notebook is not an exercise yet. Give it an id and a title; an example test is added for you to edit.'
        )
      );
      const id = input(
        'text',
        this.notebook.title.label
          .replace(/\.ipynb$/, '')
          .toLowerCase()
          .replace(/[^a-z0-9_-]+/g, '-')
          .replace(/^[-_]+/, '')
      );
      const name = input('text', '');
      const make = button('Make this an exercise');
      make.classList.add('jp-mod-accept');
      make.addEventListener('click', () => {
        this.draft = {
          exercise_id: id.value.trim(),
          title: name.value.trim() || id.value.trim(),
          tests: [{ name: 'example', test_code: 'assert True\n', expected_output: null, points: 1, hidden: false }]
        };
        this.render();
        this.commit();
      });
      this.head.node.append(
        field('Exercise id', id, '/exercise_id'),
        field('Title', name, '/title'),
        make,
        this.status
      );
      this.foot.hide();
      return;
    }
    this.foot.show();
    this.foot.node.prepend(this.status); // the form above borrowed it
    const id = input('text', this.draft.exercise_id ?? '');
    id.addEventListener('input', () => {
      this.draft.exercise_id = id.value;
      this.commit();
    });
    const name = input('text', this.draft.title ?? '');
    name.addEventListener('input', () => {
      this.draft.title = name.value;
      this.commit();
    });
    const testsHeading = el('h3', 'jp-ExecExt-panelSubtitle', 'Tests');
    this.head.node.append(
      field('Exercise id', id, '/exercise_id', 'Submissions and the grader know the exercise by it.'),
      field('Title', name, '/title')
    );
    const heading = new Widget();
    heading.node.appendChild(testsHeading);
    this.testsBox.addWidget(heading);
    const tests: ITestDraft[] = Array.isArray(this.draft.tests) ? this.draft.tests : (this.draft.tests = []);
    tests.forEach((test, index) => this.testsBox.addWidget(this.testEditor(tests, test, index)));
    const add = new Widget();
    const addButton = button('Add test');
    addButton.addEventListener('click', () => {
      let n = tests.length + 1;
      while (tests.some(t => t.name === `test ${n}`)) {
        n++;
      }
      tests.push({ name: `test ${n}`, test_code: 'assert True\n', expected_output: null, points: 1, hidden: false });
      this.render();
      this.commit();
      this.node.querySelector<HTMLInputElement>(`[data-path="/tests/${tests.length - 1}/name"]`)?.focus();
    });
    const testsError = el('div', 'jp-ExecExt-fieldError');
    testsError.dataset.errorFor = '/tests';
    add.node.append(addButton, testsError);
    this.testsBox.addWidget(add);
    if (this.validate) {
      this.commit();
    }
  }

  private testEditor(tests: ITestDraft[], test: ITestDraft, index: number): Widget {
    const base = `/tests/${index}`;
    const box = new Panel();
    box.addClass('jp-ExecExt-testEditor');
    box.node.setAttribute('role', 'group');
    box.node.setAttribute('aria-label', `Test ${index + 1}: ${test.name}`);
    const top = new Widget();
    top.addClass('jp-ExecExt-testFields');
    top.node.appendChild(el('h4', 'jp-ExecExt-testTitle', `Test ${index + 1}`));
    const name = input('text', test.name ?? '');
    name.addEventListener('input', () => {
      test.name = name.value;
      box.node.setAttribute('aria-label', `Test ${index + 1}: ${test.name}`);
      this.commit();
    });
    const points = input('number', String(test.points ?? 1));
    points.min = '0';
    points.step = 'any';
    points.addEventListener('input', () => {
      if (points.value === '') {
        delete test.points; // the default, 1
      } else {
        test.points = Number(points.value);
      }
      this.commit();
    });
    const hidden = input('checkbox', '');
    hidden.checked = !!test.hidden;
    hidden.addEventListener('change', () => {
      test.hidden = hidden.checked;
      this.commit();
    });
    const hiddenField = field('Hidden', hidden, `${base}/hidden`, 'Students see only its name and outcome.');
    hiddenField.classList.add('jp-ExecExt-checkField');
    const nameField = field('Name', name, `${base}/name`);
    nameField.classList.add('jp-ExecExt-wide');
    top.node.append(nameField, field('Points', points, `${base}/points`), hiddenField);
    box.addWidget(top);

    const codeLabel = new Widget();
    const codeLabelId = `jp-ExecExt-code-${++fieldCounter}`;
    const codeLabelNode = el('div', 'jp-ExecExt-fieldLabel', 'Test code (runs after the student’s code)');
    codeLabelNode.id = codeLabelId;
    codeLabel.node.appendChild(codeLabelNode);
    box.addWidget(codeLabel);
    const model = new CodeEditor.Model({ mimeType: 'text/x-ipython' });
    model.sharedModel.setSource(test.test_code ?? '');
    const editor = new CodeEditorWrapper({
      factory: this.editors.factoryService.newInlineEditor,
      model,
      editorOptions: { config: { lineNumbers: true } }
    });
    editor.addClass('jp-ExecExt-testCode');
    editor.node.dataset.path = `${base}/test_code`;
    // The text box screen readers reach is CodeMirror's content element: it carries the name.
    editor.node.querySelector('.cm-content')?.setAttribute('aria-labelledby', codeLabelId);
    model.sharedModel.changed.connect(() => {
      test.test_code = model.sharedModel.getSource();
      this.commit();
    });
    editor.disposed.connect(() => model.dispose());
    box.addWidget(editor);
    const codeError = new Widget();
    codeError.node.appendChild(el('div', 'jp-ExecExt-fieldError'));
    (codeError.node.firstChild as HTMLElement).dataset.errorFor = `${base}/test_code`;
    box.addWidget(codeError);

    const rest = new Widget();
    rest.addClass('jp-ExecExt-testFields');
    const expected = el('textarea', 'jp-mod-styled jp-ExecExt-input jp-ExecExt-expected');
    expected.rows = 2;
    expected.value = test.expected_output ?? '';
    expected.addEventListener('input', () => {
      test.expected_output = expected.value === '' ? null : expected.value;
      this.commit();
    });
    const compare = el('select', 'jp-mod-styled jp-ExecExt-input');
    for (const [value, text] of [
      ['strip', 'strip: ignore surrounding blank space'],
      ['exact', 'exact'],
      ['float', 'float: numbers within a tolerance'],
      ['regex', 'regex: output matches a pattern']
    ]) {
      const option = el('option', '', text);
      option.value = value;
      option.selected = (test.compare ?? 'strip') === value;
      compare.appendChild(option);
    }
    const tolerance = input('number', String(test.tolerance ?? 1e-6));
    tolerance.step = 'any';
    const toleranceField = field('Tolerance', tolerance, `${base}/tolerance`);
    toleranceField.hidden = (test.compare ?? 'strip') !== 'float';
    compare.addEventListener('change', () => {
      test.compare = compare.value;
      toleranceField.hidden = compare.value !== 'float';
      if (compare.value !== 'float') {
        delete test.tolerance;
      }
      this.commit();
    });
    tolerance.addEventListener('input', () => {
      test.tolerance = Number(tolerance.value);
      this.commit();
    });
    const timeout = input('number', String(test.timeout ?? 5));
    timeout.step = 'any';
    timeout.addEventListener('input', () => {
      if (timeout.value === '') {
        delete test.timeout; // the default, 5 s
      } else {
        test.timeout = Number(timeout.value);
      }
      this.commit();
    });
    const expectedField = field(
      'Expected output',
      expected,
      `${base}/expected_output`,
      'Leave empty for an assert-style test: it passes when its code raises nothing.'
    );
    expectedField.classList.add('jp-ExecExt-full');
    rest.node.append(
      expectedField,
      field('Comparison', compare, `${base}/compare`),
      toleranceField,
      field('Timeout (seconds)', timeout, `${base}/timeout`)
    );
    const actions = el('div', 'jp-ExecExt-testActions jp-ExecExt-full');
    const up = button('Move up', `Move test ${index + 1} up`);
    up.disabled = index === 0;
    const down = button('Move down', `Move test ${index + 1} down`);
    down.disabled = index === tests.length - 1;
    const remove = button('Delete', `Delete test ${index + 1}`);
    const move = (to: number) => {
      const [item] = tests.splice(index, 1);
      tests.splice(to, 0, item);
      this.render();
      this.commit();
      this.node.querySelector<HTMLInputElement>(`[data-path="/tests/${to}/name"]`)?.focus();
    };
    up.addEventListener('click', () => move(index - 1));
    down.addEventListener('click', () => move(index + 1));
    remove.addEventListener('click', () => {
      tests.splice(index, 1);
      this.render();
      this.commit();
    });
    actions.append(up, down, remove);
    rest.node.appendChild(actions);
    box.addWidget(rest);
    return box;
  }

  private buildFoot(): void {
    const bar = el('div', 'jp-ExecExt-authoringActions');
    const validate = button('Validate in sandbox');
    validate.classList.add('jp-mod-accept');
    const preview = button('Preview as student');
    const release = button('Release to students');
    const path = () => this.notebook.context.path;
    const busy = (on: boolean) => [validate, preview, release].forEach(b => (b.disabled = on));
    const run = async (what: string, action: () => Promise<void>) => {
      busy(true);
      this.results.textContent = `${what}…`;
      try {
        await this.notebook.context.save(); // the server reads the notebook from disk
        await action();
      } catch (error) {
        this.results.replaceChildren(
          el('div', 'jp-ExecExt-authoringError', `${what} failed: ${(error as Error).message}`)
        );
      } finally {
        busy(false);
      }
    };
    validate.addEventListener(
      'click',
      () =>
        void run('Validating in the sandbox', async () => {
          const answer = await requestAPI<IValidation>('authoring/validate', {
            method: 'POST',
            body: JSON.stringify({ path: path() })
          });
          this.results.replaceChildren(renderValidation(document, answer));
        })
    );
    preview.addEventListener(
      'click',
      () =>
        void run('Making the student copy', async () => {
          const answer = await requestAPI<{ notebook: any }>('authoring/preview', {
            method: 'POST',
            body: JSON.stringify({ path: path() })
          });
          this.openPreview(answer.notebook, this.notebook.title.label);
          this.results.textContent = 'The preview opened beside the notebook.';
        })
    );
    release.addEventListener(
      'click',
      () =>
        void run('Releasing', async () => {
          const answer = await requestAPI<{ action: string; path: string }>('authoring/release', {
            method: 'POST',
            body: JSON.stringify({ path: path() })
          });
          const words: Record<string, string> = {
            added: 'Released: students now have',
            updated: 'Released: updated the students’ copy',
            'added beside': 'Released beside the student’s edited copy as',
            unchanged: 'Already released, unchanged:'
          };
          const node = el(
            'div',
            'jp-ExecExt-released',
            `${words[answer.action] ?? answer.action} ${answer.path} in their workspace.`
          );
          node.dataset.action = answer.action;
          this.results.replaceChildren(node);
        })
    );
    bar.append(validate, preview, release);
    this.foot.node.append(this.status, bar, this.results);
  }
}
