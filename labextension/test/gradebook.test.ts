import { doc } from './dom-globals';
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import {
  csvUrl, filterLines, formatTime, IExerciseStats, IGradebook, IProgress, ISubmissionDetail, ISubmissionPage,
  isInstructor, relativeTime, sortLines, studentLines
} from '../src/grades';
import { cellText, GradebookView, renderGradebookTable, renderStats } from '../src/gradebook';
import { addHistoryCommand, HISTORY_COMMAND, numbered, renderHistory, renderProgress, showHistory } from '../src/history';

const text = (node: Element | null | undefined) => (node ? (node.textContent ?? '').trim() : '');
const row = (user: string, exercise_id: string, score: number | null, extra: any = {}) => ({
  user, exercise_id, best: score, last: score, max_score: 10, attempts: score === null ? 0 : 1, late: false,
  last_at: '2026-11-30T10:00:00Z', score, ...extra
});
const BOOK: IGradebook = {
  exercises: ['add', 'lists'],
  users: ['carol', 'alice', 'bob', 'dave'],
  rows: [
    row('alice', 'add', 10, { attempts: 3, best: 10, last: 6 }), row('alice', 'lists', 4),
    row('bob', 'add', 7, { late: true, attempts: 2 }), row('bob', 'lists', 9),
    row('carol', 'add', 2),
    // dave is enrolled (a user) but never submitted anything.
  ]
};
const users = (lines: Array<{ user: string }>) => lines.map(l => l.user);

test('the gradebook rows become one line per student, with totals', () => {
  const lines = studentLines(BOOK);
  assert.deepEqual(users(lines), ['carol', 'alice', 'bob', 'dave']);
  const alice = lines.find(l => l.user === 'alice')!;
  assert.equal(alice.total, 14);
  assert.equal(alice.totalMax, 20);
  // Out of every exercise anyone submitted, also for carol who skipped one.
  assert.equal(lines.find(l => l.user === 'carol')!.totalMax, 20);
  assert.deepEqual(cellText(alice, 'add'), { main: '10 / 10', detail: '3 attempts · best 10, last 6' });
  assert.deepEqual(cellText(lines.find(l => l.user === 'bob')!, 'add'), { main: '7 / 10', detail: '2 attempts · late' });
  assert.deepEqual(cellText(lines.find(l => l.user === 'carol')!, 'lists'), { main: '—', detail: 'no submission' });
});

test('sorting by name, by an exercise and by total; empty cells last in both directions', () => {
  const lines = studentLines(BOOK);
  assert.deepEqual(users(sortLines(lines, { kind: 'user' }, 'ascending')), ['alice', 'bob', 'carol', 'dave']);
  assert.deepEqual(users(sortLines(lines, { kind: 'user' }, 'descending')), ['dave', 'carol', 'bob', 'alice']);
  assert.deepEqual(users(sortLines(lines, { kind: 'exercise', id: 'add' }, 'descending')), ['alice', 'bob', 'carol', 'dave']);
  assert.deepEqual(users(sortLines(lines, { kind: 'exercise', id: 'add' }, 'ascending')), ['carol', 'bob', 'alice', 'dave']);
  assert.deepEqual(users(sortLines(lines, { kind: 'exercise', id: 'lists' }, 'ascending')), ['alice', 'bob', 'carol', 'dave']);
  assert.deepEqual(users(sortLines(lines, { kind: 'total' }, 'descending')), ['bob', 'alice', 'carol', 'dave']);
  // Numeric-aware names: student2 before student10.
  const numbered = studentLines({ exercises: [], users: ['student10', 'student2'], rows: [] });
  assert.deepEqual(users(sortLines(numbered, { kind: 'user' }, 'ascending')), ['student2', 'student10']);
});

test('the filter keeps students whose name contains the text, ignoring case and spaces', () => {
  const lines = studentLines(BOOK);
  assert.deepEqual(users(filterLines(lines, ' AL ')), ['alice']);
  assert.deepEqual(users(filterLines(lines, 'o')), ['carol', 'bob']);
  assert.equal(filterLines(lines, '').length, 4);
  assert.equal(filterLines(lines, 'zzz').length, 0);
});

test('the Gradebook is offered when the server says instructor, or in instructor mode without the flag', () => {
  assert.equal(isInstructor({ mode: 'student', instructor: true }), true);   // e.g. a hub instructor
  assert.equal(isInstructor({ mode: 'instructor', instructor: false }), false);
  assert.equal(isInstructor({ mode: 'instructor' }), true);                  // a server before the gradebook
  assert.equal(isInstructor({ mode: 'student' }), false);
  assert.equal(isInstructor(null), false);
  assert.equal(isInstructor({ instructor: 'yes' as any, mode: 'student' }), false);
});

test('the CSV link asks the gradebook route for CSV, under the server base URL', () => {
  assert.equal(csvUrl(null, 'http://h:1/base/'), 'http://h:1/base/api/exec/v1/gradebook?format=csv');
  assert.equal(csvUrl('a b&c', 'http://h:1/'), 'http://h:1/api/exec/v1/gradebook?format=csv&exercise=a%20b%26c');
});

test('the table: sortable headers with aria-sort, one row per student shown, a caption saying so', () => {
  const pressed: any[] = [];
  const { table, shown, total } = renderGradebookTable(doc, BOOK, { key: { kind: 'exercise', id: 'add' }, direction: 'descending', filter: '' }, k => pressed.push(k));
  assert.equal(shown, 4);
  assert.equal(total, 4);
  const headers = [...table.querySelectorAll('thead th')];
  assert.deepEqual(headers.map(h => h.getAttribute('aria-sort')), ['none', 'descending', 'none', 'none']);
  assert.deepEqual(headers.map(h => text(h.querySelector('button')).replace(/[▲▼]/, '').trim()), ['Student', 'add', 'lists', 'Total']);
  assert.ok(headers.every(h => h.getAttribute('scope') === 'col'));
  const rows = [...table.querySelectorAll('tbody tr')];
  assert.deepEqual(rows.map(r => (r as HTMLElement).dataset.user), ['alice', 'bob', 'carol', 'dave']);
  assert.equal(rows[0].querySelector('th')!.getAttribute('scope'), 'row');
  assert.equal(text(rows[1].querySelector('td[data-exercise="add"] .jp-ExecExt-gradeMain')), '7 / 10');
  assert.equal((rows[1].querySelector('td[data-exercise="add"]') as HTMLElement).dataset.late, 'true');
  assert.equal(text(rows[0].querySelector('.jp-ExecExt-gradeTotal')), '14 / 20');
  assert.equal(text(rows[2].querySelector('.jp-ExecExt-gradeTotal')), '2 / 20');
  assert.equal(text(rows[3].querySelector('.jp-ExecExt-gradeTotal')), '—');
  assert.match(text(table.querySelector('caption')), /4 of 4 students shown, sorted by add, descending/);
  (headers[3].querySelector('button') as HTMLButtonElement).click();
  assert.deepEqual(pressed, [{ kind: 'total' }]);
  // Names and messages are text, never HTML.
  const evil = renderGradebookTable(doc, { exercises: ['<b>x</b>'], users: ['<img src=x onerror=alert(1)>'], rows: [] },
    { key: { kind: 'user' }, direction: 'ascending', filter: '' }, () => {});
  assert.equal(evil.table.querySelector('img'), null);
  assert.equal(evil.table.querySelector('tbody b'), null);
});

test('exercises nobody submitted are left out of the table unless asked for', () => {
  const book = { ...BOOK, exercises: ['add', 'later', 'lists'] };
  const columns = (showEmpty: boolean) => [...renderGradebookTable(doc, book, { key: { kind: 'user' }, direction: 'ascending', filter: '', showEmpty }, () => {})
    .table.querySelectorAll('thead th')].map(th => (th as HTMLElement).dataset.column);
  assert.deepEqual(columns(false), ['user', 'add', 'lists', 'total']);
  assert.deepEqual(columns(true), ['user', 'add', 'later', 'lists', 'total']);
  // An empty cell shows a dash; "no submission" is there for screen readers.
  const { table } = renderGradebookTable(doc, book, { key: { kind: 'user' }, direction: 'ascending', filter: '', showEmpty: true }, () => {});
  const cell = table.querySelector('tr[data-user="alice"] td[data-exercise="later"]')!;
  assert.equal(text(cell.querySelector('.jp-ExecExt-gradeMain')), '—');
  assert.equal(text(cell.querySelector('.jp-ExecExt-visuallyHidden')), 'no submission');
});

const STATS: IExerciseStats = {
  exercise_id: 'add', submissions: 9, students: 4,
  tests: [
    { name: 'small numbers', hidden: false, pass_rate: 1, passed_students: 4, attempted_students: 4, median_attempts_to_first_pass: 1,
      failures: [] },
    { name: 'negatives', hidden: false, pass_rate: 0.25, passed_students: 1, attempted_students: 4, median_attempts_to_first_pass: 3,
      failures: [{ message: 'expected -5, got 5', count: 6 }, { message: 'NameError: name "x" is not defined', count: 2 }] },
    { name: 'big', hidden: true, pass_rate: 0.5, passed_students: 2, attempted_students: 4, median_attempts_to_first_pass: null }
  ]
};

test('statistics: a bar per test hidden from screen readers, the table with every number, the failures', () => {
  const node = renderStats(doc, STATS);
  assert.equal(text(node.querySelector('.jp-ExecExt-statsSummary')), '9 submissions by 4 students.');
  const svg = node.querySelector('svg')!;
  assert.equal(svg.getAttribute('aria-hidden'), 'true');
  const bars = [...svg.querySelectorAll('rect.jp-ExecExt-chartBar')];
  assert.deepEqual(bars.map(b => b.getAttribute('width')), ['240', '60', '120']);
  assert.match(text(node.querySelector('figcaption')), /Lowest: negatives at 25 %/);
  const rows = [...node.querySelectorAll('.jp-ExecExt-statsTable tbody tr')].map(r => [...r.children].map(c => text(c)));
  assert.deepEqual(rows, [
    ['small numbers', '100 %', '4 of 4', '1'],
    ['negatives', '25 %', '1 of 4', '3'],
    ['big (hidden)', '50 %', '2 of 4', 'nobody passed yet']
  ]);
  const failures = [...node.querySelectorAll('.jp-ExecExt-failures')];
  assert.deepEqual(failures.map(f => (f as HTMLElement).dataset.test), ['negatives']);
  assert.deepEqual([...failures[0].querySelectorAll('li')].map(li => text(li)), ['6×expected -5, got 5', '2×NameError: name "x" is not defined']);
});

/** A fake server: the answers by endpoint, and what was asked. */
function fakeServer(answers: Record<string, any>) {
  const asked: string[] = [];
  const fetcher = async <T>(endpoint: string): Promise<T> => {
    asked.push(endpoint);
    const answer = answers[endpoint];
    if (answer instanceof Error) {
      throw answer;
    }
    if (answer === undefined) {
      throw new Error(`no fake answer for ${endpoint}`);
    }
    return answer as T;
  };
  return { fetcher, asked };
}
const tick = () => new Promise(resolve => setTimeout(resolve, 0));

test('the Gradebook panel loads, sorts on Enter/click, filters, announces, and links the CSV', async () => {
  const server = fakeServer({ gradebook: BOOK, 'exercises/add/stats': STATS, 'exercises/lists/stats': { ...STATS, exercise_id: 'lists', tests: [] } });
  const view = new GradebookView(server.fetcher, ex => `/csv${ex ? `?exercise=${ex}` : ''}`);
  Widget.attach(view, doc.body);
  await tick();
  await tick();
  const node = view.node;
  assert.equal(text(node.querySelector('h2')), 'Gradebook');
  assert.equal(node.getAttribute('role'), 'region');
  assert.deepEqual(server.asked, ['gradebook', 'exercises/add/stats']);
  assert.equal(node.querySelector('.jp-ExecExt-csvLink')!.getAttribute('href'), '/csv');
  const region = node.querySelector('[aria-live="polite"]')!;
  await new Promise(resolve => setTimeout(resolve, 80));
  assert.match(text(region), /Test statistics of add loaded: 3 tests|Gradebook loaded/);
  const order = () => [...node.querySelectorAll('tbody tr.jp-ExecExt-gradebookRow')].map(r => (r as HTMLElement).dataset.user);
  assert.deepEqual(order(), ['alice', 'bob', 'carol', 'dave']);
  // The filter's label names it; typing narrows the rows.
  const filter = node.querySelector('input[type="search"]') as HTMLInputElement;
  assert.equal(text(node.querySelector(`label[for="${filter.id}"]`)), 'Filter students');
  filter.value = 'b';
  filter.dispatchEvent(new doc.defaultView!.Event('input'));
  assert.deepEqual(order(), ['bob']);
  assert.equal(text(node.querySelector('.jp-ExecExt-gradebookStatus')), '1 of 4 students shown.');
  filter.value = '';
  filter.dispatchEvent(new doc.defaultView!.Event('input'));
  // A header is a button: click (or Enter, which a button turns into a click) sorts by it.
  const header = (column: string) => node.querySelector(`th[data-column="${column}"]`)!;
  (header('total').querySelector('button') as HTMLButtonElement).click();
  assert.deepEqual(order(), ['bob', 'alice', 'carol', 'dave']);
  assert.equal(header('total').getAttribute('aria-sort'), 'descending');
  assert.equal(header('user').getAttribute('aria-sort'), 'none');
  assert.equal(doc.activeElement, header('total').querySelector('button'), 'the pressed header keeps the focus');
  (header('total').querySelector('button') as HTMLButtonElement).click();
  assert.equal(header('total').getAttribute('aria-sort'), 'ascending');
  assert.deepEqual(order(), ['carol', 'alice', 'bob', 'dave']);
  await new Promise(resolve => setTimeout(resolve, 80));
  assert.equal(text(region), 'Sorted by Total, ascending.');
  // The statistics follow the exercise chosen.
  assert.equal(node.querySelector('.jp-ExecExt-stats')!.getAttribute('data-exercise'), 'add');
  const select = node.querySelector('select') as HTMLSelectElement;
  assert.equal(text(node.querySelector(`label[for="${select.id}"]`)), 'Exercise');
  select.value = 'lists';
  select.dispatchEvent(new doc.defaultView!.Event('change'));
  await tick();
  assert.match(text(node.querySelector('.jp-ExecExt-stats')), /No test results recorded/);
  Widget.detach(view);
});

test('a gradebook refused by the server says why, and nothing else is drawn', async () => {
  const server = fakeServer({ gradebook: new Error('Not allowed: the gradebook is for instructors') });
  const view = new GradebookView(server.fetcher, () => '/csv');
  await view.load();
  assert.match(text(view.node.querySelector('.jp-ExecExt-gradebookStatus')), /could not be loaded: Not allowed: the gradebook is for instructors/);
  assert.equal(view.node.querySelector('table'), null);
});

const PROGRESS: IProgress = {
  exercise_id: 'add', due: '2026-12-01T12:00:00Z', late_policy: 'accept', max_attempts: 5, attempts: 2,
  attempts_left: 3, score_rule: 'best', best: 7, last: 3, max_score: 7, late: false
};
const summary = (id: string, score: number, at: string, late = false) => ({
  id, user: 'me', exercise_id: 'add', exercise_version: 'v1', submitted_at: at, score, max_score: 7,
  status: 'ok', late, duration_ms: 80
});
const PAGE: ISubmissionPage = {
  submissions: [summary('s3', 3, '2026-11-30T15:10:00Z', true), summary('s2', 7, '2026-11-30T15:05:00Z')],
  total: 2, limit: 50, offset: 0
};

test('times read the same everywhere; the due time says how far it is', () => {
  assert.equal(formatTime('2026-11-30T15:04:59.9+01:00'), '2026-11-30 14:04 UTC');
  const now = new Date('2026-11-30T12:00:00Z');
  assert.equal(relativeTime('2026-12-01T12:00:00Z', now), 'in 24 h');
  assert.equal(relativeTime('2026-11-30T11:30:00Z', now), '30 min ago');
  assert.equal(relativeTime('2026-12-05T12:00:00Z', now), 'in 5 days');
});

test('progress: due time, attempts left, best and last, the rule that counts', () => {
  const now = new Date('2026-11-30T12:00:00Z');
  const facts = (p: IProgress) => Object.fromEntries([...renderProgress(doc, p, now).querySelectorAll('.jp-ExecExt-progressItem')]
    .map(i => [(i as HTMLElement).dataset.key, text(i.querySelector('dd'))]));
  assert.deepEqual(facts(PROGRESS), {
    due: '2026-12-01 12:00 UTC (in 24 h)', attempts: '2 of 5 used, 3 left', best: '7 / 7', last: '3 / 7', rule: 'your best score'
  });
  const after = facts({ ...PROGRESS, due: '2026-11-29T12:00:00Z', late_policy: 'refuse', max_attempts: null, attempts_left: null,
                        score_rule: 'last', best: null, last: null, late: true });
  assert.deepEqual(after, {
    due: '2026-11-29 12:00 UTC (passed: submissions are no longer accepted)', attempts: '2 used, no limit',
    best: '—', last: '—', rule: 'your last score', late: 'a counted submission was late'
  });
});

test('history: attempts numbered from the first, a chart with a text alternative, newest listed first', () => {
  assert.deepEqual(numbered({ ...PAGE, total: 12, offset: 0 }).map(a => a.attempt), [11, 12]);
  const opened: any[] = [];
  const node = renderHistory(doc, 'add', PROGRESS, PAGE, { open: (s, a) => opened.push([s.id, a]) });
  assert.equal(text(node.querySelector('h3')), 'Your submissions of add');
  assert.equal(node.getAttribute('aria-labelledby'), node.querySelector('h3')!.id);
  const bars = [...node.querySelectorAll('svg rect')];
  assert.deepEqual(bars.map(b => (b as HTMLElement).dataset.attempt), ['1', '2']);
  assert.equal(node.querySelector('svg')!.getAttribute('aria-hidden'), 'true');
  assert.equal(text(node.querySelector('figcaption')),
    'Score over 2 attempts, oldest first: 7, 3 (out of 7). Each attempt is listed below.');
  const buttons = [...node.querySelectorAll('.jp-ExecExt-attempts button')] as HTMLButtonElement[];
  assert.deepEqual(buttons.map(b => text(b)), [
    'Attempt 2: 3 / 7 on 2026-11-30 15:10 UTC, late', 'Attempt 1: 7 / 7 on 2026-11-30 15:05 UTC'
  ]);
  buttons[1].click();
  assert.deepEqual(opened, [['s2', 1]]);
  assert.equal(buttons[1].getAttribute('aria-current'), 'true');
  buttons[0].click();
  assert.equal(buttons[1].getAttribute('aria-current'), null);
  const empty = renderHistory(doc, 'add', null, { submissions: [], total: 0, limit: 50, offset: 0 }, { open: () => {} });
  assert.equal(text(empty.querySelector('.jp-ExecExt-historyEmpty')), 'No submission recorded yet.');
});

test('showHistory adds the history under the results and opens a past attempt in their place', async () => {
  const detail: ISubmissionDetail = {
    ...summary('s2', 7, '2026-11-30T15:05:00Z'), code: { code: 'def add(a, b):\n    return a + b' },
    tests: [{ name: 'small', status: 'passed', points: 7, max_points: 7, hidden: false }], stdout: '', stderr: ''
  };
  const server = fakeServer({
    'exercises/add/progress': PROGRESS, 'submissions?exercise=add&limit=50': PAGE, 'submissions/s2': detail,
    'submissions/s3': new Error('Not found on the server.')
  });
  const panel = doc.createElement('div');
  doc.body.appendChild(panel);
  const current = doc.createElement('div');
  current.className = 'jp-ExecExt-result jp-ExecExt-submission';
  current.textContent = 'the results just shown';
  panel.appendChild(current);
  await showHistory(panel, 'add', server.fetcher);
  assert.deepEqual([...panel.children].map(c => c.className.split(' ')[0]), ['jp-ExecExt-result', 'jp-ExecExt-history', 'jp-ExecExt-visuallyHidden']);
  assert.equal(text(panel.querySelector('.jp-ExecExt-result')), 'the results just shown');
  await new Promise(resolve => setTimeout(resolve, 80));
  assert.equal(text(panel.querySelector('[aria-live="polite"]')), 'Submission history loaded: 2 attempts, 3 left');
  // Again (after the next submission): one history, refreshed, not two.
  await showHistory(panel, 'add', server.fetcher);
  assert.equal(panel.querySelectorAll('.jp-ExecExt-history').length, 1);
  (panel.querySelector('li[data-id="s2"] button') as HTMLButtonElement).click();
  await tick();
  const past = panel.querySelector('.jp-ExecExt-result')!;
  assert.ok(past.classList.contains('jp-ExecExt-pastSubmission'));
  assert.equal(text(past.querySelector('.jp-ExecExt-pastNote')), 'Attempt 1, submitted 2026-11-30 15:05 UTC');
  assert.equal(text(past.querySelector('.jp-ExecExt-score')), 'Score: 7 / 7');
  assert.equal(text(past.querySelector('.jp-ExecExt-pastCode pre')), 'def add(a, b):\n    return a + b');
  assert.equal(doc.activeElement, past, 'the opened attempt takes the focus');
  assert.equal(panel.querySelectorAll('.jp-ExecExt-result').length, 1);
  // One that cannot be loaded says so in the same place.
  (panel.querySelector('li[data-id="s3"] button') as HTMLButtonElement).click();
  await tick();
  assert.match(text(panel.querySelector('.jp-ExecExt-result')), /Attempt 2.*Not found on the server/);
  assert.deepEqual(server.asked.filter(a => a.startsWith('submissions/')), ['submissions/s2', 'submissions/s3']);
});

test('a history that cannot be loaded says so and leaves the results alone', async () => {
  const server = fakeServer({ 'exercises/add/progress': new Error('x'), 'submissions?exercise=add&limit=50': new Error('Server error (500): boom') });
  const panel = doc.createElement('div');
  panel.appendChild(doc.createElement('p')).className = 'jp-ExecExt-result';
  const section = await showHistory(panel, 'add', server.fetcher);
  assert.equal(section.dataset.state, 'error');
  assert.match(text(section), /could not be loaded: Server error \(500\): boom/);
  assert.ok(panel.querySelector('p.jp-ExecExt-result'));
});

test('Submission history: hidden outside an exercise, else it fills the Results panel it opens', async () => {
  const commands = new CommandRegistry();
  let exercise: string | null = null;
  const panel = doc.createElement('div');
  let opened = 0;
  addHistoryCommand(commands, () => exercise, () => { opened += 1; return panel; });
  assert.equal(commands.isVisible(HISTORY_COMMAND), false);
  await commands.execute(HISTORY_COMMAND);
  assert.equal(opened, 0, 'no panel opened for a notebook that is not an exercise');
  exercise = 'add';
  assert.equal(commands.isVisible(HISTORY_COMMAND), true);
  assert.equal(commands.label(HISTORY_COMMAND), 'Submission history');
  // The real command asks the real server; here requestAPI has none, so the section says so.
  await commands.execute(HISTORY_COMMAND);
  assert.equal(opened, 1);
  assert.equal(text(panel.querySelector('.jp-ExecExt-history h3')), 'Your submissions of add');
  assert.equal(panel.querySelector('.jp-ExecExt-history')!.getAttribute('data-state'), 'error');
});
