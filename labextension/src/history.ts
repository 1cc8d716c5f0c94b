/**
 * The student's history of one exercise, under the results in the Results panel: due time,
 * attempts left, best and last score (`exercises/{id}/progress`), the score of every attempt as a
 * small bar chart with the list of attempts as its text alternative (`submissions`), and any past
 * attempt's results opened from that list (`submissions/{id}`). All of it comes from the server,
 * so it is there again after a reload.
 *
 * `showHistory(node, exerciseId)` is the one call the Results panel makes: it adds (or refreshes)
 * the history section at the end of `node` and keeps the results shown above it.
 * `addHistoryCommand` adds *Submission history*, which opens it without submitting (after a reload).
 */
import type { CommandRegistry } from '@lumino/commands';

import { el, renderError, renderSubmission } from './render.js';
import {
  defaultFetcher,
  Fetcher,
  formatPoints,
  formatScore,
  formatTime,
  IProgress,
  ISubmissionDetail,
  ISubmissionPage,
  ISubmissionSummary,
  query,
  relativeTime
} from './grades.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Attempts listed (and drawn) at most; the total is still said. */
export const HISTORY_LIMIT = 50;

let uid = 0;
function nextId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A visually hidden polite live region: screen readers hear what loaded, nobody else sees it. */
export function liveRegion(doc: Document): HTMLElement {
  const region = el(doc, 'div', 'jp-ExecExt-visuallyHidden jp-ExecExt-announce');
  region.setAttribute('role', 'status');
  region.setAttribute('aria-live', 'polite');
  return region;
}

/** Says `message` through `region` (cleared first, so the same words are read again). */
export function announce(region: HTMLElement, message: string): void {
  region.textContent = '';
  region.ownerDocument.defaultView?.setTimeout(() => {
    region.textContent = message;
  }, 50);
  // Without a window (unit tests) the text is set at once.
  if (!region.ownerDocument.defaultView) {
    region.textContent = message;
  }
}

/** The facts of `progress` as a description list: due, attempts, best, last, counted score. */
export function renderProgress(doc: Document, progress: IProgress, now: Date = new Date()): HTMLElement {
  const list = el(doc, 'dl', 'jp-ExecExt-progress');
  const add = (term: string, value: string, key: string) => {
    const item = el(doc, 'div', 'jp-ExecExt-progressItem');
    item.dataset.key = key;
    item.appendChild(el(doc, 'dt', '', term));
    item.appendChild(el(doc, 'dd', '', value));
    list.appendChild(item);
  };
  if (progress.due) {
    const passed = new Date(progress.due).getTime() < now.getTime();
    const after = passed
      ? progress.late_policy === 'refuse'
        ? 'passed: submissions are no longer accepted'
        : 'passed: new submissions are marked late'
      : relativeTime(progress.due, now);
    add('Due', `${formatTime(progress.due)} (${after})`, 'due');
  } else {
    add('Due', 'no deadline', 'due');
  }
  if (progress.max_attempts !== null && progress.max_attempts !== undefined) {
    const left = progress.attempts_left ?? Math.max(0, progress.max_attempts - progress.attempts);
    add('Attempts', `${progress.attempts} of ${progress.max_attempts} used, ${left} left`, 'attempts');
  } else {
    add('Attempts', `${progress.attempts} used, no limit`, 'attempts');
  }
  add('Best score', formatScore(progress.best, progress.max_score), 'best');
  add('Last score', formatScore(progress.last, progress.max_score), 'last');
  add('Counts', progress.score_rule === 'last' ? 'your last score' : 'your best score', 'rule');
  if (progress.late) {
    add('Late', 'a counted submission was late', 'late');
  }
  return list;
}

/** The attempts oldest first, each with its number (1 = the first ever, even if not listed). */
export function numbered(page: ISubmissionPage): Array<{ attempt: number; submission: ISubmissionSummary }> {
  return page.submissions.map((submission, i) => ({ attempt: page.total - page.offset - i, submission })).reverse();
}

/** One line of text per attempt, the chart's text alternative and the list's labels. */
export function attemptLabel(attempt: number, s: ISubmissionSummary): string {
  return `Attempt ${attempt}: ${formatScore(s.score, s.max_score)} on ${formatTime(s.submitted_at)}${s.late ? ', late' : ''}`;
}

/**
 * A bar per attempt, its height the score's share of the maximum. Decorative for screen readers
 * (`aria-hidden`): the list of attempts right below says the same in words.
 */
export function renderScoreChart(
  doc: Document,
  attempts: Array<{ attempt: number; submission: ISubmissionSummary }>
): SVGSVGElement {
  const barWidth = 14;
  const gap = 4;
  const height = 60;
  const width = Math.max(1, attempts.length) * (barWidth + gap) + gap;
  const svg = doc.createElementNS(SVG_NS, 'svg') as SVGSVGElement;
  svg.setAttribute('class', 'jp-ExecExt-scoreChart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height + 2}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height + 2));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const axis = doc.createElementNS(SVG_NS, 'line');
  axis.setAttribute('class', 'jp-ExecExt-chartAxis');
  axis.setAttribute('x1', '0');
  axis.setAttribute('x2', String(width));
  axis.setAttribute('y1', String(height + 1));
  axis.setAttribute('y2', String(height + 1));
  svg.appendChild(axis);
  attempts.forEach(({ attempt, submission }, i) => {
    const share = submission.max_score > 0 ? Math.max(0, Math.min(1, submission.score / submission.max_score)) : 0;
    const barHeight = Math.max(2, Math.round(share * height));
    const bar = doc.createElementNS(SVG_NS, 'rect');
    bar.setAttribute('class', `jp-ExecExt-chartBar${share >= 1 ? ' jp-mod-full' : ''}`);
    bar.setAttribute('x', String(gap + i * (barWidth + gap)));
    bar.setAttribute('y', String(height + 1 - barHeight));
    bar.setAttribute('width', String(barWidth));
    bar.setAttribute('height', String(barHeight));
    bar.dataset.attempt = String(attempt);
    bar.dataset.share = String(share);
    svg.appendChild(bar);
  });
  return svg;
}

export interface IHistoryHandlers {
  /** Opens a past attempt's results (a click or Enter on its button). */
  open(submission: ISubmissionSummary, attempt: number): void;
}

/**
 * The history section: heading, progress, chart and the list of attempts (buttons that open
 * them). Pure: `handlers.open` does the fetching.
 */
export function renderHistory(
  doc: Document,
  exerciseId: string,
  progress: IProgress | null,
  page: ISubmissionPage,
  handlers: IHistoryHandlers,
  now: Date = new Date()
): HTMLElement {
  const section = el(doc, 'section', 'jp-ExecExt-history');
  const headingId = nextId('jp-ExecExt-historyHeading');
  section.setAttribute('aria-labelledby', headingId);
  const heading = el(doc, 'h3', 'jp-ExecExt-historyHeading', `Your submissions of ${exerciseId}`);
  heading.id = headingId;
  section.appendChild(heading);
  if (progress) {
    section.appendChild(renderProgress(doc, progress, now));
  }
  const attempts = numbered(page);
  section.dataset.total = String(page.total);
  if (attempts.length === 0) {
    section.appendChild(el(doc, 'p', 'jp-ExecExt-historyEmpty', 'No submission recorded yet.'));
    return section;
  }
  const figure = el(doc, 'figure', 'jp-ExecExt-historyChart');
  figure.appendChild(renderScoreChart(doc, attempts));
  const scores = attempts.map(a => formatPoints(a.submission.score)).join(', ');
  const caption = el(
    doc,
    'figcaption',
    'jp-ExecExt-chartCaption',
    `Score over ${attempts.length === 1 ? '1 attempt' : `${attempts.length} attempts`}, oldest first: ${scores}` +
      ` (out of ${formatPoints(attempts[attempts.length - 1].submission.max_score)}). Each attempt is listed below.`
  );
  figure.appendChild(caption);
  section.appendChild(figure);
  const listHeading = el(
    doc,
    'h4',
    'jp-ExecExt-attemptsHeading',
    page.total > attempts.length ? `Attempts (the latest ${attempts.length} of ${page.total})` : 'Attempts'
  );
  section.appendChild(listHeading);
  const list = el(doc, 'ol', 'jp-ExecExt-attempts');
  // Newest first, as people look for their last try; numbered so the order is never in doubt.
  for (const { attempt, submission } of [...attempts].reverse()) {
    const item = el(doc, 'li', 'jp-ExecExt-attempt');
    item.dataset.id = submission.id;
    item.dataset.attempt = String(attempt);
    const button = el(
      doc,
      'button',
      'jp-ExecExt-attemptButton jp-mod-styled',
      attemptLabel(attempt, submission)
    ) as HTMLButtonElement;
    button.type = 'button';
    button.dataset.full = String(submission.score >= submission.max_score && submission.max_score > 0);
    button.addEventListener('click', () => {
      for (const other of list.querySelectorAll('[aria-current]')) {
        other.removeAttribute('aria-current');
      }
      button.setAttribute('aria-current', 'true');
      handlers.open(submission, attempt);
    });
    item.appendChild(button);
    list.appendChild(item);
  }
  section.appendChild(list);
  return section;
}

/** The fields of a past submission as the results view reads them. */
export function detailAsResult(detail: ISubmissionDetail) {
  return {
    exercise_id: detail.exercise_id,
    status: detail.status,
    score: detail.score,
    max_score: detail.max_score,
    tests: detail.tests ?? [],
    stdout: detail.stdout ?? '',
    stderr: detail.stderr ?? '',
    duration_ms: detail.duration_ms,
    message: detail.message
  };
}

/** The code of a stored submission, whatever way the request carried it. */
export function submittedCode(code: unknown): string | null {
  if (typeof code === 'string') {
    return code;
  }
  if (code && typeof code === 'object' && typeof (code as { code?: unknown }).code === 'string') {
    return (code as { code: string }).code;
  }
  return null;
}

/** A past attempt's results: which attempt and when, then the results as they were shown. */
export function renderPastSubmission(doc: Document, detail: ISubmissionDetail, attempt: number): HTMLElement {
  const root = renderSubmission(doc, detailAsResult(detail));
  root.classList.add('jp-ExecExt-pastSubmission');
  root.dataset.id = detail.id;
  const note = el(
    doc,
    'div',
    'jp-ExecExt-pastNote',
    `Attempt ${attempt}, submitted ${formatTime(detail.submitted_at)}${detail.late ? ' (late)' : ''}`
  );
  root.insertBefore(note, root.children[1] ?? null);
  const code = submittedCode(detail.code);
  if (code !== null) {
    const details = el(doc, 'details', 'jp-ExecExt-pastCode');
    details.appendChild(el(doc, 'summary', '', 'Code submitted'));
    details.appendChild(el(doc, 'pre', 'jp-ExecExt-pre', code));
    root.appendChild(details);
  }
  return root;
}

/**
 * Adds the history of `exerciseId` at the end of the Results panel's `node` (replacing an older
 * one). A past attempt opened from it replaces the results shown above it and takes the focus.
 * Failures show as a message in the section; they never touch the results above.
 */
export async function showHistory(
  node: HTMLElement,
  exerciseId: string,
  fetcher: Fetcher = defaultFetcher,
  now: Date = new Date()
): Promise<HTMLElement> {
  const doc = node.ownerDocument;
  let region = node.querySelector<HTMLElement>(':scope > .jp-ExecExt-announce');
  if (!region) {
    region = liveRegion(doc);
    node.appendChild(region);
  }
  const id = encodeURIComponent(exerciseId);
  let section: HTMLElement;
  try {
    const [progress, page] = await Promise.all([
      fetcher<IProgress>(`exercises/${id}/progress`).catch(() => null),
      fetcher<ISubmissionPage>(`submissions${query({ exercise: exerciseId, limit: HISTORY_LIMIT })}`)
    ]);
    const open = async (submission: ISubmissionSummary, attempt: number) => {
      let shown: HTMLElement;
      try {
        const detail = await fetcher<ISubmissionDetail>(`submissions/${encodeURIComponent(submission.id)}`);
        shown = renderPastSubmission(doc, detail, attempt);
        announce(region!, `Showing attempt ${attempt}: ${formatScore(detail.score, detail.max_score)}`);
      } catch (error) {
        shown = renderError(doc, `Attempt ${attempt}`, (error as Error).message);
        announce(region!, `Attempt ${attempt} could not be loaded: ${(error as Error).message}`);
      }
      const old = node.querySelector(':scope > .jp-ExecExt-result');
      if (old) {
        old.replaceWith(shown);
      } else {
        node.insertBefore(shown, node.firstChild);
      }
      shown.tabIndex = -1;
      shown.focus();
    };
    section = renderHistory(doc, exerciseId, progress, page, { open: (s, a) => void open(s, a) }, now);
    announce(
      region,
      `Submission history loaded: ${page.total === 1 ? '1 attempt' : `${page.total} attempts`}` +
        (progress?.attempts_left !== null && progress?.attempts_left !== undefined
          ? `, ${progress.attempts_left} left`
          : '')
    );
  } catch (error) {
    section = el(doc, 'section', 'jp-ExecExt-history');
    section.appendChild(el(doc, 'h3', 'jp-ExecExt-historyHeading', `Your submissions of ${exerciseId}`));
    section.appendChild(
      el(
        doc,
        'div',
        'jp-ExecExt-message jp-ExecExt-historyError',
        `The history could not be loaded: ${(error as Error).message}`
      )
    );
    section.dataset.state = 'error';
  }
  const old = node.querySelector(':scope > .jp-ExecExt-history');
  if (old) {
    old.replaceWith(section);
  } else {
    node.insertBefore(section, region);
  }
  return section;
}

export const HISTORY_COMMAND = 'jupyter-exec-ext:submission-history';

/**
 * Adds *Submission history*: on an exercise notebook, opens its Results panel and shows the history
 * there, also when nothing was submitted since the page loaded.
 *
 * @param exercise the exercise id of the current notebook, or null (then the command is hidden)
 * @param openResults opens (or reveals) the current notebook's Results panel; returns the node
 *   `showHistory` fills, or null
 */
export function addHistoryCommand(
  commands: CommandRegistry,
  exercise: () => string | null,
  openResults: () => HTMLElement | null
): void {
  commands.addCommand(HISTORY_COMMAND, {
    label: 'Submission history',
    caption: 'Your past submissions of this exercise: scores, due time, attempts left; open any one',
    isVisible: () => exercise() !== null,
    execute: async () => {
      const id = exercise();
      const node = id === null ? null : openResults();
      if (id !== null && node) {
        await showHistory(node, id);
      }
    }
  });
}
