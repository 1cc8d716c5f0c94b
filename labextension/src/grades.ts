/**
 * The gradebook's data as the REST API sends it (`submissions`, `gradebook`,
 * `exercises/{id}/stats`, `exercises/{id}/progress`; see openapi.yaml) and the pure helpers the
 * student history and the instructor's Gradebook panel share: the student × exercise matrix,
 * its sorting and filtering, the CSV link, and how times and scores read.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE, requestAPI } from './request.js';
import { ITestResult, RunStatus } from './types.js';

/** One recorded submission, without its code and test details. */
export interface ISubmissionSummary {
  id: string;
  user: string;
  exercise_id: string;
  exercise_version: string;
  submitted_at: string;
  score: number;
  max_score: number;
  /** How the submitted code itself ran. */
  status: RunStatus;
  late: boolean;
  duration_ms: number;
}

export interface ISubmissionPage {
  submissions: ISubmissionSummary[];
  total: number;
  limit: number;
  offset: number;
}

/** `GET submissions/{id}`: hidden tests carry name, status and points only (for students). */
export interface ISubmissionDetail extends ISubmissionSummary {
  code: unknown;
  tests: ITestResult[];
  stdout: string;
  stderr: string;
  message?: string;
}

/** `GET exercises/{id}/progress`: the caller's standing on one exercise. */
export interface IProgress {
  exercise_id: string;
  due: string | null;
  late_policy: 'accept' | 'refuse';
  max_attempts: number | null;
  attempts: number;
  attempts_left: number | null;
  score_rule: 'best' | 'last';
  best: number | null;
  last: number | null;
  max_score: number | null;
  late: boolean;
}

/** One student × exercise cell of the gradebook. */
export interface IGradebookRow {
  user: string;
  exercise_id: string;
  best: number | null;
  last: number | null;
  max_score: number | null;
  attempts: number;
  late: boolean;
  last_at: string | null;
  score: number | null;
}

export interface IGradebook {
  exercises: string[];
  users: string[];
  rows: IGradebookRow[];
}

export interface ITestStats {
  name: string;
  hidden: boolean;
  pass_rate: number;
  passed_students: number;
  attempted_students: number;
  median_attempts_to_first_pass: number | null;
  failures?: Array<{ message: string; count: number }>;
}

export interface IExerciseStats {
  exercise_id: string;
  submissions: number;
  students: number;
  tests: ITestStats[];
}

/** `GET authoring/mode`: the server's mode, and (with the gradebook) whether the caller is an instructor. */
export interface IModeAnswer {
  mode?: string;
  instructor?: boolean;
}

/**
 * Whether the gradebook is the caller's: the server's `instructor` flag, or for a server that
 * does not send one, instructor mode.
 */
export function isInstructor(answer: IModeAnswer | null): boolean {
  if (!answer || typeof answer !== 'object') {
    return false;
  }
  return typeof answer.instructor === 'boolean' ? answer.instructor : answer.mode === 'instructor';
}

/** How the panels fetch JSON: `requestAPI` in the lab, a fake in the unit tests. */
export type Fetcher = <T>(endpoint: string) => Promise<T>;
export const defaultFetcher: Fetcher = <T>(endpoint: string) => requestAPI<T>(endpoint);

/** Query string of the given parameters, leaving out empty ones. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The address of the gradebook as CSV (a plain link: the browser sends the session cookie). */
export function csvUrl(exercise: string | null = null, baseUrl?: string): string {
  const base = baseUrl ?? ServerConnection.makeSettings().baseUrl;
  return URLExt.join(base, API_NAMESPACE, 'gradebook') + query({ format: 'csv', exercise });
}

/** An ISO time as `YYYY-MM-DD HH:MM UTC` (the same for everyone, whatever their locale). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** How far `iso` is from `now`, in words: "in 3 h", "2 days ago". */
export function relativeTime(iso: string, now: Date = new Date()): string {
  const ms = new Date(iso).getTime() - now.getTime();
  if (Number.isNaN(ms)) {
    return '';
  }
  const minutes = Math.round(Math.abs(ms) / 60_000);
  let span: string;
  if (minutes < 60) {
    span = `${minutes} min`;
  } else if (minutes < 48 * 60) {
    span = `${Math.round(minutes / 60)} h`;
  } else {
    span = `${Math.round(minutes / 1440)} days`;
  }
  return ms >= 0 ? `in ${span}` : `${span} ago`;
}

/** A number as people write points: at most two decimals, no trailing zeros. */
export function formatPoints(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return '—';
  }
  return String(Math.round(value * 100) / 100);
}

export function formatScore(score: number | null | undefined, max: number | null | undefined): string {
  if (score === null || score === undefined) {
    return '—';
  }
  return max === null || max === undefined ? formatPoints(score) : `${formatPoints(score)} / ${formatPoints(max)}`;
}

export function percent(rate: number): string {
  return `${Math.round(rate * 100)} %`;
}

// -- the gradebook matrix -----------------------------------------------------------------------

/** One student's line of the matrix: a cell per exercise (absent: never submitted). */
export interface IStudentLine {
  user: string;
  cells: Map<string, IGradebookRow>;
  /**
   * Sum of the counted scores, and of the maxima of every exercise anyone submitted (so students
   * who skipped one are out of the same total as the others).
   */
  total: number;
  totalMax: number;
}

/** The `rows` of `GET gradebook` as one line per student, in the server's order of users. */
export function studentLines(book: IGradebook): IStudentLine[] {
  const byUser = new Map<string, IStudentLine>();
  const line = (user: string): IStudentLine => {
    let found = byUser.get(user);
    if (!found) {
      found = { user, cells: new Map(), total: 0, totalMax: 0 };
      byUser.set(user, found);
    }
    return found;
  };
  for (const user of book.users) {
    line(user);
  }
  const maxima = new Map<string, number>();
  for (const row of book.rows) {
    const entry = line(row.user);
    entry.cells.set(row.exercise_id, row);
    entry.total += row.score ?? 0;
    if (row.max_score !== null && row.max_score !== undefined) {
      maxima.set(row.exercise_id, Math.max(maxima.get(row.exercise_id) ?? 0, row.max_score));
    }
  }
  const totalMax = [...maxima.values()].reduce((a, b) => a + b, 0);
  for (const entry of byUser.values()) {
    entry.totalMax = totalMax;
  }
  return [...byUser.values()];
}

/** Exercise ids of the book, with any that only appear in rows added at the end. */
export function exerciseColumns(book: IGradebook): string[] {
  const ids = [...book.exercises];
  for (const row of book.rows) {
    if (!ids.includes(row.exercise_id)) {
      ids.push(row.exercise_id);
    }
  }
  return ids;
}

/** What the table is sorted by: the student, the total, or one exercise's counted score. */
export type SortKey = { kind: 'user' } | { kind: 'total' } | { kind: 'exercise'; id: string };
export type SortDirection = 'ascending' | 'descending';

export function sameKey(a: SortKey, b: SortKey): boolean {
  return a.kind === b.kind && (a.kind !== 'exercise' || a.id === (b as { id: string }).id);
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/**
 * The lines sorted by `key`. Students who never submitted an exercise come last whatever the
 * direction (an empty cell is not a zero); ties keep the order of the students' names.
 */
export function sortLines(lines: IStudentLine[], key: SortKey, direction: SortDirection): IStudentLine[] {
  const sign = direction === 'ascending' ? 1 : -1;
  const byName = (a: IStudentLine, b: IStudentLine) => collator.compare(a.user, b.user);
  const value = (line: IStudentLine): number | null => {
    if (key.kind === 'total') {
      return line.cells.size > 0 ? line.total : null;
    }
    if (key.kind === 'exercise') {
      const cell = line.cells.get(key.id);
      return cell && cell.score !== null ? cell.score : null;
    }
    return null;
  };
  return [...lines].sort((a, b) => {
    if (key.kind === 'user') {
      return sign * byName(a, b);
    }
    const va = value(a);
    const vb = value(b);
    if (va === null || vb === null) {
      return va === vb ? byName(a, b) : va === null ? 1 : -1;
    }
    return va === vb ? byName(a, b) : sign * (va - vb);
  });
}

/** The lines whose student name contains `text` (case-insensitive); all of them for blank text. */
export function filterLines(lines: IStudentLine[], text: string): IStudentLine[] {
  const needle = text.trim().toLowerCase();
  if (!needle) {
    return lines;
  }
  return lines.filter(line => line.user.toLowerCase().includes(needle));
}
