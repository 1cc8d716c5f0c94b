/**
 * The sandbox box under a cell: a live run's output as it arrives, the elapsed time against the
 * time limit, a Stop button, an input field when the program reads input, the figures it shows,
 * and at the end the run's status, message and notes.
 *
 * `LiveView` is the DOM alone (given a `Document`, unit-tested with jsdom); the widget a cell's
 * layout holds (`SandboxOutputBox`, runcell.ts) shows one view per run. Text goes in through text nodes only: output is never parsed
 * as HTML. For screen readers the box has one polite live region that is busy while the run goes
 * and then says one short summary ("Sandbox run: runtime error, 8 ms"); the streamed output itself
 * is not announced line by line.
 */
import { IDisplay, ILiveResult } from './live.js';
import { el, runStatusText } from './render.js';

/** The figures shown inline: PNG only, and only base64 text (nothing else reaches `src`). */
const DISPLAY_MIMES = new Set(['image/png']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** What the box's controls do; the run's owner wires them to the socket. */
export interface ILiveViewActions {
  stop(): void;
  sendLine(line: string): void;
  sendEof(): void;
}

/** Seconds for people: `3 s`, `0.4 s` under one second. */
export function formatSeconds(seconds: number): string {
  if (seconds < 1) {
    return `${Math.max(0, Math.round(seconds * 10) / 10)} s`;
  }
  return `${Math.floor(seconds)} s`;
}

/** The elapsed-time text of a running box: `elapsed 3 s of 30 s` (limit unknown: `elapsed 3 s`). */
export function elapsedText(elapsedMs: number, limitS: number | null): string {
  const elapsed = `elapsed ${formatSeconds(elapsedMs / 1000)}`;
  return limitS ? `${elapsed} of ${formatSeconds(limitS)} limit` : elapsed;
}

/** The one sentence spoken when a run ends, e.g. `Sandbox run: runtime error, 8 ms`. */
export function spokenSummary(result: Pick<ILiveResult, 'status' | 'duration_ms'>): string {
  return `Sandbox run: ${runStatusText(result.status)}, ${result.duration_ms} ms`;
}

/**
 * The messages of a policy violation, each said once: `line 3: import of os is not allowed` on
 * lines 3 and 7 becomes `import of os is not allowed (lines 3, 7)`. Lines not of that form are kept
 * once each, in order.
 */
export function policyMessages(text: string): string[] {
  const byMessage = new Map<string, number[]>();
  const order: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) {
      continue;
    }
    const match = /^line (\d+): (.*)$/.exec(line);
    const message = match ? match[2] : line;
    if (!byMessage.has(message)) {
      byMessage.set(message, []);
      order.push(message);
    }
    if (match) {
      byMessage.get(message)!.push(Number(match[1]));
    }
  }
  return order.map(message => {
    const lines = [...new Set(byMessage.get(message)!)];
    if (lines.length === 0) {
      return message;
    }
    return `${message} (line${lines.length === 1 ? '' : 's'} ${lines.join(', ')})`;
  });
}

/** An output block: a label and a preformatted text the run appends to. */
class StreamBlock {
  readonly node: HTMLElement;
  readonly pre: HTMLElement;
  private _text = '';

  constructor(doc: Document, label: string, kind: string) {
    this.node = el(doc, 'div', `jp-ExecExt-stream jp-ExecExt-${kind}`);
    const labelNode = el(doc, 'div', 'jp-ExecExt-streamLabel', label);
    labelNode.id = `jp-ExecExt-label-${kind}-${Math.random().toString(36).slice(2, 10)}`;
    this.pre = el(doc, 'pre', 'jp-ExecExt-pre');
    this.pre.setAttribute('aria-labelledby', labelNode.id);
    this.node.append(labelNode, this.pre);
    this.node.hidden = true;
  }

  get text(): string {
    return this._text;
  }

  /** Appends as a text node: a flood of small writes is not quadratic in the page. */
  append(text: string, className?: string): void {
    if (!text) {
      return;
    }
    this._text += text;
    const doc = this.pre.ownerDocument;
    if (className) {
      this.pre.appendChild(el(doc, 'span', className, text));
    } else {
      this.pre.appendChild(doc.createTextNode(text));
    }
    this.node.hidden = false;
  }

  replace(text: string): void {
    this._text = '';
    this.pre.replaceChildren();
    this.append(text);
    this.node.hidden = !text;
  }
}

let inputIds = 0;

/**
 * The DOM of one run, from start to end. `begin` → (`started`, `tick`, `output`, `askInput`,
 * `display`)* → `finish` or `fail`.
 */
export class LiveView {
  readonly node: HTMLElement;
  /** The polite live region: busy during the run, then the summary. */
  readonly announcer: HTMLElement;
  private readonly _badge: HTMLElement;
  private readonly _facts: HTMLElement;
  private readonly _stop: HTMLButtonElement;
  private readonly _messages: HTMLElement;
  private readonly _stdout: StreamBlock;
  private readonly _stderr: StreamBlock;
  private readonly _figures: HTMLElement;
  private readonly _inputSlot: HTMLElement;
  private _limitS: number | null = null;
  private _figureCount = 0;
  private _inputRow: HTMLElement | null = null;
  private _ended = false;

  constructor(
    private readonly _doc: Document,
    private readonly _actions: ILiveViewActions
  ) {
    this.node = el(_doc, 'div', 'jp-ExecExt-result jp-ExecExt-live jp-ExecExt-pending');
    this.node.dataset.status = 'pending';
    this.node.setAttribute('role', 'group');
    this.node.setAttribute('aria-label', 'Sandbox output');
    const head = el(_doc, 'div', 'jp-ExecExt-header');
    head.appendChild(el(_doc, 'span', 'jp-ExecExt-title', 'Sandbox output'));
    this._badge = el(_doc, 'span', 'jp-ExecExt-badge jp-ExecExt-badge-pending', 'starting…');
    this._badge.dataset.status = 'pending';
    this._facts = el(_doc, 'span', 'jp-ExecExt-facts');
    this._stop = el(_doc, 'button', 'jp-ExecExt-stop jp-mod-styled', 'Stop') as HTMLButtonElement;
    this._stop.type = 'button';
    this._stop.title = 'Stop this sandbox run (the kernel toolbar’s ■ does the same)';
    this._stop.setAttribute('aria-label', 'Stop the sandbox run');
    this._stop.addEventListener('click', () => this._actions.stop());
    head.append(this._badge, this._facts, this._stop);
    this.announcer = el(_doc, 'div', 'jp-ExecExt-announcer');
    this.announcer.setAttribute('role', 'status');
    this.announcer.setAttribute('aria-live', 'polite');
    this.announcer.setAttribute('aria-atomic', 'true');
    this._messages = el(_doc, 'div', 'jp-ExecExt-messages');
    this._stdout = new StreamBlock(_doc, 'stdout', 'stdout');
    this._stderr = new StreamBlock(_doc, 'stderr', 'stderr');
    this._figures = el(_doc, 'div', 'jp-ExecExt-figures');
    this._inputSlot = el(_doc, 'div', 'jp-ExecExt-inputSlot');
    this.node.append(
      head,
      this.announcer,
      this._messages,
      this._stdout.node,
      this._stderr.node,
      this._inputSlot,
      this._figures
    );
  }

  get stopButton(): HTMLButtonElement {
    return this._stop;
  }

  /** The input field while the program waits for a line, else null. */
  get inputField(): HTMLInputElement | null {
    return this._inputRow?.querySelector('input') ?? null;
  }

  get ended(): boolean {
    return this._ended;
  }

  /** The run was sent: busy, Stop shown. */
  begin(): void {
    this.announcer.setAttribute('aria-busy', 'true');
    this.node.setAttribute('aria-busy', 'true');
    this.announcer.textContent = '';
    this._facts.textContent = 'waiting for a sandbox…';
  }

  started(limitS: number | null): void {
    this._limitS = limitS;
    this._setBadge('running…', 'pending');
  }

  tick(elapsedMs: number): void {
    if (!this._ended) {
      this._facts.textContent = elapsedText(elapsedMs, this._limitS);
    }
  }

  /** A run that cannot be stopped from here (the plain API): no Stop button. */
  withoutStop(): void {
    this._stop.remove();
  }

  /** Stop was pressed: say so until the server confirms. */
  stopping(): void {
    this._stop.disabled = true;
    this._stop.textContent = 'Stopping…';
    this._setBadge('stopping…', 'pending');
  }

  output(stream: 'stdout' | 'stderr', data: string): void {
    (stream === 'stderr' ? this._stderr : this._stdout).append(data);
  }

  /** A line for the reader of the box (not from the program), e.g. a refused message. */
  note(text: string): void {
    if ([...this._messages.children].some(child => child.textContent === text)) {
      return;
    }
    this._messages.appendChild(el(this._doc, 'div', 'jp-ExecExt-note', text));
  }

  /**
   * The program reads a line: an input field labelled by the prompt, like the classic notebook's
   * `input()`. Enter sends the line; Ctrl+D or the button ends the input. Returns the field.
   */
  askInput(prompt: string): HTMLInputElement {
    this._removeInput();
    const doc = this._doc;
    const id = `jp-ExecExt-input-${++inputIds}`;
    const row = el(doc, 'form', 'jp-ExecExt-input');
    const label = el(doc, 'label', 'jp-ExecExt-inputLabel', prompt.trim() ? prompt : 'Input:');
    label.setAttribute('for', id);
    const field = doc.createElement('input');
    field.type = 'text';
    field.id = id;
    field.className = 'jp-ExecExt-inputField jp-mod-styled';
    field.autocomplete = 'off';
    field.spellcheck = false;
    const hint = el(doc, 'span', 'jp-ExecExt-inputHint', 'Enter sends the line; Ctrl+D ends the input.');
    hint.id = `${id}-hint`;
    field.setAttribute('aria-describedby', hint.id);
    const eof = el(doc, 'button', 'jp-ExecExt-eof jp-mod-styled', 'End input') as HTMLButtonElement;
    eof.type = 'button';
    eof.title = 'End the program’s input (Ctrl+D): its next read gets end of file';
    row.append(label, field, eof, hint);
    const send = (): void => {
      if (!field.isConnected) {
        return; // answered already (Enter and the form's submit both lead here)
      }
      const line = field.value;
      // Like a terminal: the answer stays in the transcript after the prompt.
      const shown = this._stdout.text.endsWith(prompt) ? '' : prompt;
      this._stdout.append(`${shown}${line}\n`, 'jp-ExecExt-echo');
      this._removeInput();
      this._actions.sendLine(`${line}\n`);
      this._keepFocusInBox();
    };
    row.addEventListener('submit', event => {
      event.preventDefault();
      send();
    });
    const sendEof = (): void => {
      this._removeInput();
      this._actions.sendEof();
      this._keepFocusInBox();
    };
    field.addEventListener('keydown', event => {
      // Enter is handled here: JupyterLab's key handling keeps the form from submitting itself.
      if (event.key === 'Enter' && !event.isComposing && !event.shiftKey) {
        event.preventDefault();
        send();
        return;
      }
      if (event.key === 'd' && event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        event.stopPropagation();
        sendEof();
      }
    });
    eof.addEventListener('click', sendEof);
    this._inputRow = row;
    this._inputSlot.appendChild(row);
    return field;
  }

  display(display: IDisplay): void {
    if (!DISPLAY_MIMES.has(display.mime) || !BASE64.test(display.data)) {
      this.note(`A figure of type ${display.mime} could not be shown.`);
      return;
    }
    this._figureCount += 1;
    const figure = el(this._doc, 'figure', 'jp-ExecExt-figure');
    const image = this._doc.createElement('img');
    image.className = 'jp-ExecExt-figureImage';
    image.alt = `Figure ${this._figureCount} shown by the program in the sandbox`;
    image.src = `data:${display.mime};base64,${display.data}`;
    figure.appendChild(image);
    figure.appendChild(el(this._doc, 'figcaption', 'jp-ExecExt-figureCaption', `Figure ${this._figureCount}`));
    this._figures.appendChild(figure);
  }

  /** The run's result: status, facts, message and notes; output from the result if none streamed. */
  finish(result: ILiveResult, streamed: boolean, fallbackReason?: string): void {
    this._end();
    this.node.classList.add('jp-ExecExt-run');
    this.node.dataset.status = result.status;
    // Stopped by the student is not an error of the program: a neutral badge.
    const kind = result.status === 'ok' ? 'ok' : result.status === 'cancelled' ? 'stopped' : 'error';
    this._setBadge(runStatusText(result.status), kind);
    const facts = [`${result.duration_ms} ms`];
    if (result.exit_code !== null && result.exit_code !== undefined) {
      facts.push(`exit code ${result.exit_code}`);
    }
    if (result.cached) {
      facts.push('from cache');
    }
    this._facts.textContent = facts.join(' · ');
    const policy = result.status === 'policy_violation';
    const said = new Set<string>();
    const say = (text: string, className: string): void => {
      const key = text.trim();
      if (key && !said.has(key)) {
        said.add(key);
        this._messages.appendChild(el(this._doc, 'div', className, text));
      }
    };
    if (policy) {
      // The policy's messages arrive in both `message` and `stderr`: each is said once here.
      for (const message of policyMessages([result.stderr, result.message ?? ''].join('\n'))) {
        say(message, 'jp-ExecExt-message');
      }
    } else if (result.message) {
      say(result.message, 'jp-ExecExt-message');
    }
    for (const note of result.notes ?? []) {
      say(note, 'jp-ExecExt-note');
    }
    if (!streamed && fallbackReason) {
      // Replaces the note said while waiting.
      for (const child of [...this._messages.children]) {
        if (child.textContent?.startsWith('Output is not streamed:')) {
          child.remove();
        }
      }
      say(
        `Output was not streamed: ${fallbackReason}. The run went through the plain API (no input, no Stop).`,
        'jp-ExecExt-note'
      );
    }
    if (result.dropped) {
      // The stream skipped events the page was too slow for: the result's output is complete.
      this._stdout.replace(result.stdout);
      this._stderr.replace(result.stderr);
      say('Output came faster than the page could show it; the complete output is shown.', 'jp-ExecExt-note');
    }
    if (!this._stdout.text && result.stdout) {
      this._stdout.replace(result.stdout);
    }
    if (policy) {
      this._stderr.replace('');
    } else if (!this._stderr.text && result.stderr) {
      this._stderr.replace(result.stderr);
    }
    if (this._figureCount === 0) {
      for (const display of result.displays ?? []) {
        this.display(display);
      }
    }
    if (!this._stdout.text && !this._stderr.text && this._figureCount === 0) {
      this._messages.appendChild(el(this._doc, 'div', 'jp-ExecExt-empty', '(no output)'));
    }
    if (result.truncated) {
      say('Output was cut at the sandbox output limit.', 'jp-ExecExt-note');
    }
    this.announcer.textContent = spokenSummary(result);
  }

  /** The run could not happen or its end was lost: the reason, marked as such. */
  fail(message: string): void {
    this._end();
    this.node.classList.add('jp-ExecExt-failure');
    this.node.dataset.status = 'request_error';
    this._setBadge('failed', 'error');
    this._facts.textContent = '';
    this._messages.appendChild(el(this._doc, 'div', 'jp-ExecExt-message', message));
    this.announcer.textContent = `Sandbox run failed: ${message}`;
  }

  private _end(): void {
    this._ended = true;
    this._removeInput();
    this._stop.remove();
    this.node.classList.remove('jp-ExecExt-pending');
    this.node.removeAttribute('aria-busy');
    this.announcer.setAttribute('aria-busy', 'false');
  }

  /** After an answer the field is gone: focus moves to Stop, not to the page. */
  private _keepFocusInBox(): void {
    if (!this._ended && this._stop.isConnected) {
      this._stop.focus();
    }
  }

  private _removeInput(): void {
    this._inputRow?.remove();
    this._inputRow = null;
  }

  private _setBadge(text: string, kind: string): void {
    this._badge.textContent = text;
    this._badge.className = `jp-ExecExt-badge jp-ExecExt-badge-${kind}`;
    this._badge.dataset.status = kind;
  }
}
