/**
 * The instructor's Gradebook panel (launcher and command palette, instructors only): the
 * student × exercise table (`GET gradebook`), sortable by any column header (click or Enter;
 * `aria-sort` says how) and filtered by student name, a CSV download (`gradebook?format=csv`),
 * and per exercise the test statistics (`exercises/{id}/stats`): a bar chart of pass rates with a
 * table of the same numbers as its alternative, and the commonest failure messages.
 */
import { Widget } from '@lumino/widgets';

import { el } from './render.js';
import { announce, liveRegion } from './history.js';
import {
  csvUrl,
  defaultFetcher,
  exerciseColumns,
  Fetcher,
  filterLines,
  formatPoints,
  formatScore,
  formatTime,
  IExerciseStats,
  IGradebook,
  IStudentLine,
  percent,
  sameKey,
  SortDirection,
  SortKey,
  sortLines,
  studentLines
} from './grades.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

let uid = 0;
function nextId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}`;
}

function keyLabel(key: SortKey): string {
  return key.kind === 'user' ? 'Student' : key.kind === 'total' ? 'Total' : key.id;
}

/** The text of one student × exercise cell, for the table and for its accessible name. */
export function cellText(line: IStudentLine, exercise: string): { main: string; detail: string } {
  const cell = line.cells.get(exercise);
  if (!cell || cell.attempts === 0) {
    return { main: '—', detail: 'no submission' };
  }
  const parts = [`${cell.attempts} ${cell.attempts === 1 ? 'attempt' : 'attempts'}`];
  if (cell.best !== cell.last && cell.best !== null && cell.last !== null) {
    parts.push(`best ${formatPoints(cell.best)}, last ${formatPoints(cell.last)}`);
  }
  if (cell.late) {
    parts.push('late');
  }
  return { main: formatScore(cell.score, cell.max_score), detail: parts.join(' · ') };
}

export interface ITableState {
  key: SortKey;
  direction: SortDirection;
  filter: string;
  /** Also a column for each exercise nobody has submitted yet. */
  showEmpty?: boolean;
}

/** The exercises that have at least one submission, in the book's order. */
export function submittedExercises(book: IGradebook): string[] {
  const used = new Set(book.rows.filter(r => r.attempts > 0).map(r => r.exercise_id));
  return exerciseColumns(book).filter(id => used.has(id));
}

/**
 * The gradebook table for `state`: a header button per column (its `th` carries `aria-sort`),
 * one row per student shown. `onSort` is called with the key of a header pressed.
 */
export function renderGradebookTable(
  doc: Document,
  book: IGradebook,
  state: ITableState,
  onSort: (key: SortKey) => void
): { table: HTMLTableElement; shown: number; total: number } {
  const exercises = state.showEmpty ? exerciseColumns(book) : submittedExercises(book);
  const all = studentLines(book);
  const lines = sortLines(filterLines(all, state.filter), state.key, state.direction);
  const table = el(doc, 'table', 'jp-ExecExt-gradebookTable') as HTMLTableElement;
  const caption = el(
    doc,
    'caption',
    'jp-ExecExt-tableCaption',
    `Scores by student and exercise (${lines.length} of ${all.length} students shown, ` +
      `sorted by ${keyLabel(state.key)}, ${state.direction}). Each score counts by the exercise's rule, best or last.`
  );
  table.appendChild(caption);
  const head = el(doc, 'thead', '');
  const headRow = el(doc, 'tr', '');
  const columns: SortKey[] = [
    { kind: 'user' },
    ...exercises.map(id => ({ kind: 'exercise', id }) as SortKey),
    { kind: 'total' }
  ];
  for (const key of columns) {
    const th = el(doc, 'th', 'jp-ExecExt-sortHeader');
    th.setAttribute('scope', 'col');
    const active = sameKey(key, state.key);
    th.setAttribute('aria-sort', active ? state.direction : 'none');
    th.dataset.column = key.kind === 'exercise' ? key.id : key.kind;
    const button = el(doc, 'button', 'jp-ExecExt-sortButton', keyLabel(key)) as HTMLButtonElement;
    button.type = 'button';
    // The arrow is decoration; aria-sort tells screen readers.
    const arrow = el(
      doc,
      'span',
      'jp-ExecExt-sortArrow',
      active ? (state.direction === 'ascending' ? ' ▲' : ' ▼') : ''
    );
    arrow.setAttribute('aria-hidden', 'true');
    button.appendChild(arrow);
    button.addEventListener('click', () => onSort(key));
    th.appendChild(button);
    headRow.appendChild(th);
  }
  head.appendChild(headRow);
  table.appendChild(head);
  const body = el(doc, 'tbody', '');
  for (const line of lines) {
    const row = el(doc, 'tr', 'jp-ExecExt-gradebookRow');
    row.dataset.user = line.user;
    const name = el(doc, 'th', 'jp-ExecExt-student', line.user);
    name.setAttribute('scope', 'row');
    row.appendChild(name);
    for (const exercise of exercises) {
      const { main, detail } = cellText(line, exercise);
      const td = el(doc, 'td', 'jp-ExecExt-gradeCell');
      td.dataset.exercise = exercise;
      const cell = line.cells.get(exercise);
      td.dataset.score = cell && cell.score !== null ? String(cell.score) : '';
      if (cell?.late) {
        td.dataset.late = 'true';
      }
      td.appendChild(el(doc, 'span', 'jp-ExecExt-gradeMain', main));
      // "no submission" is for screen readers; the dash says it to the eye.
      td.appendChild(
        el(doc, 'span', cell && cell.attempts > 0 ? 'jp-ExecExt-gradeDetail' : 'jp-ExecExt-visuallyHidden', detail)
      );
      if (cell?.last_at) {
        td.title = `last submission ${formatTime(cell.last_at)}`;
      }
      row.appendChild(td);
    }
    const total = el(
      doc,
      'td',
      'jp-ExecExt-gradeTotal',
      line.cells.size ? formatScore(line.total, line.totalMax) : '—'
    );
    total.dataset.score = String(line.total);
    row.appendChild(total);
    body.appendChild(row);
  }
  table.appendChild(body);
  return { table, shown: lines.length, total: all.length };
}

/**
 * Pass rate per test as horizontal bars. Hidden from screen readers: the table that follows
 * carries every number.
 */
export function renderPassRateChart(doc: Document, stats: IExerciseStats): SVGSVGElement {
  const rowHeight = 22;
  const labelWidth = 280;
  const barMax = 240;
  const width = labelWidth + barMax + 60;
  const height = Math.max(1, stats.tests.length) * rowHeight + 4;
  const svg = doc.createElementNS(SVG_NS, 'svg') as SVGSVGElement;
  svg.setAttribute('class', 'jp-ExecExt-passChart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  stats.tests.forEach((t, i) => {
    const y = 2 + i * rowHeight;
    const label = doc.createElementNS(SVG_NS, 'text');
    label.setAttribute('class', 'jp-ExecExt-chartLabel');
    label.setAttribute('x', String(labelWidth - 6));
    label.setAttribute('y', String(y + rowHeight / 2 + 4));
    label.setAttribute('text-anchor', 'end');
    const name = t.hidden ? `${t.name} (hidden)` : t.name;
    label.textContent = name.length > 40 ? `${name.slice(0, 39)}…` : name;
    svg.appendChild(label);
    const track = doc.createElementNS(SVG_NS, 'rect');
    track.setAttribute('class', 'jp-ExecExt-chartTrack');
    track.setAttribute('x', String(labelWidth));
    track.setAttribute('y', String(y + 3));
    track.setAttribute('width', String(barMax));
    track.setAttribute('height', String(rowHeight - 6));
    svg.appendChild(track);
    const bar = doc.createElementNS(SVG_NS, 'rect');
    const rate = Math.max(0, Math.min(1, t.pass_rate));
    bar.setAttribute('class', 'jp-ExecExt-chartBar');
    bar.setAttribute('x', String(labelWidth));
    bar.setAttribute('y', String(y + 3));
    bar.setAttribute('width', String(Math.round(rate * barMax)));
    bar.setAttribute('height', String(rowHeight - 6));
    bar.dataset.test = t.name;
    bar.dataset.rate = String(rate);
    svg.appendChild(bar);
    const value = doc.createElementNS(SVG_NS, 'text');
    value.setAttribute('class', 'jp-ExecExt-chartLabel');
    value.setAttribute('x', String(labelWidth + barMax + 6));
    value.setAttribute('y', String(y + rowHeight / 2 + 4));
    value.textContent = percent(rate);
    svg.appendChild(value);
  });
  return svg;
}

/** The statistics of one exercise: summary, chart, the data table, the common failures. */
export function renderStats(doc: Document, stats: IExerciseStats): HTMLElement {
  const root = el(doc, 'div', 'jp-ExecExt-stats');
  root.dataset.exercise = stats.exercise_id;
  root.appendChild(
    el(
      doc,
      'p',
      'jp-ExecExt-statsSummary',
      `${stats.submissions} ${stats.submissions === 1 ? 'submission' : 'submissions'} by ` +
        `${stats.students} ${stats.students === 1 ? 'student' : 'students'}.`
    )
  );
  if (stats.tests.length === 0) {
    root.appendChild(el(doc, 'p', 'jp-ExecExt-statsEmpty', 'No test results recorded for this exercise yet.'));
    return root;
  }
  const figure = el(doc, 'figure', 'jp-ExecExt-statsChart');
  figure.appendChild(renderPassRateChart(doc, stats));
  const hardest = [...stats.tests].sort((a, b) => a.pass_rate - b.pass_rate)[0];
  figure.appendChild(
    el(
      doc,
      'figcaption',
      'jp-ExecExt-chartCaption',
      `Pass rate per test (share of the students who tried it that passed it). Lowest: ${hardest.name}` +
        `${hardest.hidden ? ' (hidden)' : ''} at ${percent(hardest.pass_rate)}. The table below has every number.`
    )
  );
  root.appendChild(figure);

  const table = el(doc, 'table', 'jp-ExecExt-statsTable');
  table.appendChild(el(doc, 'caption', 'jp-ExecExt-tableCaption', `Test statistics of ${stats.exercise_id}`));
  const head = el(doc, 'tr', '');
  for (const title of ['Test', 'Pass rate', 'Students passed', 'Median attempts to first pass']) {
    const th = el(doc, 'th', '', title);
    th.setAttribute('scope', 'col');
    head.appendChild(th);
  }
  const thead = el(doc, 'thead', '');
  thead.appendChild(head);
  table.appendChild(thead);
  const body = el(doc, 'tbody', '');
  for (const t of stats.tests) {
    const row = el(doc, 'tr', 'jp-ExecExt-statsRow');
    row.dataset.test = t.name;
    const name = el(doc, 'th', '', t.hidden ? `${t.name} (hidden)` : t.name);
    name.setAttribute('scope', 'row');
    row.appendChild(name);
    row.appendChild(el(doc, 'td', 'jp-ExecExt-passRate', percent(t.pass_rate)));
    row.appendChild(el(doc, 'td', '', `${t.passed_students} of ${t.attempted_students}`));
    row.appendChild(
      el(
        doc,
        'td',
        '',
        t.median_attempts_to_first_pass === null ? 'nobody passed yet' : formatPoints(t.median_attempts_to_first_pass)
      )
    );
    body.appendChild(row);
  }
  table.appendChild(body);
  root.appendChild(table);

  const failing = stats.tests.filter(t => !t.hidden && (t.failures ?? []).length > 0);
  root.appendChild(el(doc, 'h4', 'jp-ExecExt-failuresHeading', 'Common failure messages'));
  if (failing.length === 0) {
    root.appendChild(el(doc, 'p', 'jp-ExecExt-statsEmpty', 'No failure of a visible test recorded.'));
  }
  for (const t of failing) {
    const block = el(doc, 'div', 'jp-ExecExt-failures');
    block.dataset.test = t.name;
    block.appendChild(el(doc, 'h5', 'jp-ExecExt-failuresTest', t.name));
    const list = el(doc, 'ul', 'jp-ExecExt-failureList');
    for (const f of t.failures ?? []) {
      const item = el(doc, 'li', 'jp-ExecExt-failure');
      item.appendChild(el(doc, 'span', 'jp-ExecExt-failureCount', `${f.count}×`));
      item.appendChild(el(doc, 'span', 'jp-ExecExt-failureMessage', f.message));
      list.appendChild(item);
    }
    block.appendChild(list);
    root.appendChild(block);
  }
  return root;
}

/** The Gradebook panel's content: loads on attach and on Refresh; all text through textContent. */
export class GradebookView extends Widget {
  private _book: IGradebook | null = null;
  private _state: ITableState = { key: { kind: 'user' }, direction: 'ascending', filter: '' };
  private _region: HTMLElement;
  private _tableHost: HTMLElement;
  private _statsHost: HTMLElement;
  private _exercise: HTMLSelectElement;
  private _csv: HTMLAnchorElement;
  private _status: HTMLElement;
  private _loaded = false;

  constructor(
    private readonly _fetch: Fetcher = defaultFetcher,
    private readonly _csvUrl: (exercise: string | null) => string = csvUrl
  ) {
    super();
    this.addClass('jp-ExecExt-gradebook');
    const doc = this.node.ownerDocument;
    const heading = el(doc, 'h2', 'jp-ExecExt-gradebookHeading', 'Gradebook');
    heading.id = nextId('jp-ExecExt-gradebookHeading');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-labelledby', heading.id);
    this.node.appendChild(heading);
    this._region = liveRegion(doc);
    this.node.appendChild(this._region);

    const tools = el(doc, 'div', 'jp-ExecExt-gradebookTools');
    const filterId = nextId('jp-ExecExt-gradebookFilter');
    const label = el(doc, 'label', 'jp-ExecExt-fieldLabel', 'Filter students');
    label.setAttribute('for', filterId);
    const filter = el(doc, 'input', 'jp-ExecExt-input jp-ExecExt-gradebookFilter') as HTMLInputElement;
    filter.type = 'search';
    filter.id = filterId;
    filter.placeholder = 'name contains…';
    filter.addEventListener('input', () => {
      this._state = { ...this._state, filter: filter.value };
      this._renderTable(true);
    });
    this._csv = el(doc, 'a', 'jp-ExecExt-button jp-ExecExt-csvLink', 'Download CSV') as HTMLAnchorElement;
    this._csv.href = this._csvUrl(null);
    this._csv.setAttribute('download', 'grades.csv');
    const refresh = el(doc, 'button', 'jp-ExecExt-button jp-ExecExt-refresh', 'Refresh') as HTMLButtonElement;
    refresh.type = 'button';
    refresh.addEventListener('click', () => void this.load());
    const emptyId = nextId('jp-ExecExt-gradebookEmpty');
    const empty = el(doc, 'input', 'jp-ExecExt-gradebookEmpty') as HTMLInputElement;
    empty.type = 'checkbox';
    empty.id = emptyId;
    empty.addEventListener('change', () => {
      this._state = { ...this._state, showEmpty: empty.checked };
      this._renderTable(false);
      announce(
        this._region,
        empty.checked ? 'Exercises without submissions shown.' : 'Exercises without submissions hidden.'
      );
    });
    const emptyLabel = el(doc, 'label', '', 'Show exercises without submissions');
    emptyLabel.setAttribute('for', emptyId);
    const emptyField = el(doc, 'span', 'jp-ExecExt-gradebookCheck');
    emptyField.append(empty, emptyLabel);
    tools.append(label, filter, emptyField, this._csv, refresh);
    this.node.appendChild(tools);
    this._status = el(doc, 'p', 'jp-ExecExt-gradebookStatus', 'Loading…');
    this.node.appendChild(this._status);
    this._tableHost = el(doc, 'div', 'jp-ExecExt-tableHost');
    this.node.appendChild(this._tableHost);

    const statsHeadingId = nextId('jp-ExecExt-statsHeading');
    const statsSection = el(doc, 'section', 'jp-ExecExt-statsSection');
    statsSection.setAttribute('aria-labelledby', statsHeadingId);
    const statsHeading = el(doc, 'h3', '', 'Test statistics');
    statsHeading.id = statsHeadingId;
    statsSection.appendChild(statsHeading);
    const selectId = nextId('jp-ExecExt-statsExercise');
    const selectLabel = el(doc, 'label', 'jp-ExecExt-fieldLabel', 'Exercise');
    selectLabel.setAttribute('for', selectId);
    this._exercise = el(doc, 'select', 'jp-ExecExt-input jp-ExecExt-statsExercise') as HTMLSelectElement;
    this._exercise.id = selectId;
    this._exercise.addEventListener('change', () => void this.loadStats(this._exercise.value));
    const pick = el(doc, 'div', 'jp-ExecExt-statsPick');
    pick.append(selectLabel, this._exercise);
    statsSection.appendChild(pick);
    this._statsHost = el(doc, 'div', 'jp-ExecExt-statsHost');
    statsSection.appendChild(this._statsHost);
    this.node.appendChild(statsSection);
  }

  get state(): ITableState {
    return this._state;
  }

  protected onAfterAttach(): void {
    if (!this._loaded) {
      this._loaded = true;
      void this.load();
    }
  }

  /** Fetches the gradebook, draws the table, and the statistics of the selected exercise. */
  async load(): Promise<void> {
    const doc = this.node.ownerDocument;
    this._status.textContent = 'Loading…';
    this.node.setAttribute('aria-busy', 'true');
    try {
      this._book = await this._fetch<IGradebook>('gradebook');
    } catch (error) {
      this._book = null;
      this._tableHost.replaceChildren();
      this._status.textContent = `The gradebook could not be loaded: ${(error as Error).message}`;
      this._status.dataset.state = 'error';
      this.node.removeAttribute('aria-busy');
      announce(this._region, this._status.textContent);
      return;
    }
    delete this._status.dataset.state;
    const exercises = exerciseColumns(this._book);
    const previous = this._exercise.value;
    this._exercise.replaceChildren(
      ...exercises.map(id => {
        const option = doc.createElement('option');
        option.value = id;
        option.textContent = id;
        return option;
      })
    );
    const submitted = submittedExercises(this._book);
    if (exercises.includes(previous)) {
      this._exercise.value = previous;
    } else if (submitted.length) {
      this._exercise.value = submitted[0];
    }
    this._renderTable(false);
    this.node.removeAttribute('aria-busy');
    announce(
      this._region,
      `Gradebook loaded: ${this._book.users.length} ${this._book.users.length === 1 ? 'student' : 'students'}, ` +
        `${exercises.length} ${exercises.length === 1 ? 'exercise' : 'exercises'}.`
    );
    if (exercises.length) {
      await this.loadStats(this._exercise.value || exercises[0]);
    } else {
      this._statsHost.replaceChildren(el(doc, 'p', 'jp-ExecExt-statsEmpty', 'No exercise has a submission yet.'));
    }
  }

  /** Fetches and shows the statistics of `exercise`; the CSV link follows the choice. */
  async loadStats(exercise: string): Promise<void> {
    const doc = this.node.ownerDocument;
    this._statsHost.replaceChildren(el(doc, 'p', 'jp-ExecExt-gradebookStatus', 'Loading…'));
    try {
      const stats = await this._fetch<IExerciseStats>(`exercises/${encodeURIComponent(exercise)}/stats`);
      this._statsHost.replaceChildren(renderStats(doc, stats));
      announce(this._region, `Test statistics of ${exercise} loaded: ${stats.tests.length} tests.`);
    } catch (error) {
      const message = `The statistics of ${exercise} could not be loaded: ${(error as Error).message}`;
      const node = el(doc, 'p', 'jp-ExecExt-message jp-ExecExt-statsError', message);
      this._statsHost.replaceChildren(node);
      announce(this._region, message);
    }
  }

  /** Sorts by `key`: a new column ascending (scores descending), the same one reversed. */
  sortBy(key: SortKey): void {
    const same = sameKey(key, this._state.key);
    const direction: SortDirection = same
      ? this._state.direction === 'ascending'
        ? 'descending'
        : 'ascending'
      : key.kind === 'user'
        ? 'ascending'
        : 'descending';
    this._state = { ...this._state, key, direction };
    this._renderTable(true, key);
  }

  private _renderTable(say: boolean, focusKey?: SortKey): void {
    if (!this._book) {
      return;
    }
    const doc = this.node.ownerDocument;
    const { table, shown, total } = renderGradebookTable(doc, this._book, this._state, key => this.sortBy(key));
    this._tableHost.replaceChildren(table);
    const hidden = exerciseColumns(this._book).length - submittedExercises(this._book).length;
    this._status.textContent =
      total === 0
        ? 'No submission recorded yet.'
        : `${shown} of ${total} ${total === 1 ? 'student' : 'students'} shown.` +
          (hidden > 0 && !this._state.showEmpty
            ? ` ${hidden} ${hidden === 1 ? 'exercise' : 'exercises'} without submissions not shown.`
            : '');
    if (focusKey) {
      // The table was redrawn: the header just pressed keeps the focus.
      const column = focusKey.kind === 'exercise' ? focusKey.id : focusKey.kind;
      const header = [...table.querySelectorAll<HTMLElement>('th.jp-ExecExt-sortHeader')].find(
        th => th.dataset.column === column
      );
      header?.querySelector<HTMLButtonElement>('button')?.focus();
    }
    if (say) {
      announce(
        this._region,
        focusKey
          ? `Sorted by ${keyLabel(this._state.key)}, ${this._state.direction}.`
          : `${shown} of ${total} students shown.`
      );
    }
  }
}
