/**
 * A live sandbox run over the server's WebSocket (`api/exec/v1/execute/ws`): the program's output
 * arrives as it prints, it can ask for input, show figures, and be stopped. When the socket cannot
 * open (an older server, a proxy that drops WebSockets) the run falls back to `POST execute`, which
 * answers only at the end; the caller is told so it can say why the output did not stream.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE, requestAPI, SandboxRequestError } from './request.js';
import { IExecutionResult } from './types.js';

/** A figure the program showed (`plt.show()`): a base64 PNG. */
export interface IDisplay {
  mime: string;
  data: string;
}

/** `POST execute`'s answer, with the figures a server with display support adds. */
export interface ILiveResult extends IExecutionResult {
  displays?: IDisplay[];
  /** Output events the client was too slow for were dropped; the result's output is complete. */
  dropped?: boolean;
}

/** How long Stop waits for the server's `cancelled` result before closing the socket itself. */
export const CANCEL_GRACE_MS = 5000;

/** What a live run tells its viewer, in the order the server sends it. */
export interface ILiveHandlers {
  /** The run is in a container now; `timeLimitS` is its wall-clock limit. */
  started?(timeLimitS: number | null): void;
  output?(stream: 'stdout' | 'stderr', data: string): void;
  /** The program reads stdin and nothing is buffered: answer with `sendStdin` or `sendEof`. */
  inputRequest?(prompt: string): void;
  display?(display: IDisplay): void;
  /** A message the server refused, or a note about the run (the run goes on). */
  notice?(message: string): void;
  /** The socket could not open: the run goes through `POST execute` now, for this reason. */
  fallback?(reason: string): void;
}

/** How a run went over the wire: streamed, or the `POST execute` fallback (and why). */
export interface ILiveOutcome {
  result: ILiveResult;
  streamed: boolean;
  fallbackReason?: string;
}

export interface IRunRequest {
  code: string;
  stdin?: string;
  limits?: Record<string, number>;
  exercise_id?: string;
}

/** The socket's URL under the server's base URL, with the token when the settings append it. */
export function liveUrl(settings: ServerConnection.ISettings): string {
  let url = URLExt.join(settings.wsUrl, API_NAMESPACE, 'execute/ws');
  if (settings.appendToken && settings.token) {
    url += `?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}

/** The server's word for the end of a socket before a result: the close code's meaning. */
function describeClose(code: number, reason: string): string {
  if (reason) {
    return reason;
  }
  if (code === 1006) {
    return 'the connection to the server was lost';
  }
  return `the server closed the connection (code ${code})`;
}

/**
 * One run. `start` resolves with the result (exactly one per run) or rejects with a
 * `SandboxRequestError` whose message a student can read; `cancel`, `sendStdin` and `sendEof`
 * act on the run while it is going.
 */
export class LiveRun {
  private _socket: WebSocket | null = null;
  private _done = false;
  private _cancelRequested = false;
  private _plain = false;

  constructor(
    private readonly _handlers: ILiveHandlers = {},
    private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /** Whether a result is still awaited. */
  get running(): boolean {
    return !this._done;
  }

  /** Whether the run went through `POST execute` (it cannot be stopped or given input). */
  get plain(): boolean {
    return this._plain;
  }

  /** Whether Stop was asked for (the result still comes from the server). */
  get cancelRequested(): boolean {
    return this._cancelRequested;
  }

  start(request: IRunRequest): Promise<ILiveOutcome> {
    return new Promise<ILiveOutcome>((resolve, reject) => {
      let opened = false;
      let started = false;
      const finish = (fn: () => void): void => {
        if (this._done) {
          return;
        }
        this._done = true;
        fn();
        const socket = this._socket;
        this._socket = null;
        if (socket && socket.readyState <= 1) {
          socket.close(1000);
        }
      };
      const fallback = (reason: string): void => {
        if (this._done) {
          return;
        }
        this._socket = null;
        if (this._cancelRequested) {
          this._done = true;
          reject(new SandboxRequestError('Stopped before the run started.', 0));
          return;
        }
        // Answers only at the end: no input, no Stop, no streamed output, but the run happens.
        this._plain = true;
        this._handlers.fallback?.(reason);
        const post = (body: IRunRequest) =>
          requestAPI<ILiveResult>('execute', { method: 'POST', body: JSON.stringify(body) }, this._settings);
        post(request)
          .catch(error => {
            // A server whose POST execute does not know exercise_id runs the code without it.
            if (
              request.exercise_id !== undefined &&
              error instanceof SandboxRequestError &&
              error.status === 400 &&
              /exercise_id/.test(error.message)
            ) {
              const { exercise_id: _id, ...plain } = request;
              return post(plain);
            }
            throw error;
          })
          .then(result => finish(() => resolve({ result, streamed: false, fallbackReason: reason })))
          .catch(error => finish(() => reject(error)));
      };

      let socket: WebSocket;
      try {
        socket = new this._settings.WebSocket(liveUrl(this._settings));
      } catch (error) {
        fallback(`the live connection could not be opened (${(error as Error).message})`);
        return;
      }
      this._socket = socket;
      socket.onopen = () => {
        opened = true;
        socket.send(JSON.stringify({ type: 'run', ...request }));
        if (this._cancelRequested) {
          socket.send(JSON.stringify({ type: 'cancel' }));
        }
      };
      socket.onerror = () => {
        // The close event follows and says what happened; nothing to decide here.
      };
      socket.onclose = (event: CloseEvent) => {
        if (this._done) {
          return;
        }
        if (!opened) {
          fallback('the server did not accept a live connection');
          return;
        }
        finish(() =>
          reject(
            new SandboxRequestError(
              `The live run ended without a result: ${describeClose(event.code, event.reason)}. ` +
                'A run whose connection closes is stopped on the server.',
              0
            )
          )
        );
      };
      socket.onmessage = (event: MessageEvent) => {
        let message: any;
        try {
          message = JSON.parse(String(event.data));
        } catch {
          this._handlers.notice?.('The server sent a message that is not JSON; it was ignored.');
          return;
        }
        switch (message?.type) {
          case 'started':
            started = true;
            this._handlers.started?.(typeof message.time_limit_s === 'number' ? message.time_limit_s : null);
            break;
          case 'output':
            if (typeof message.data === 'string') {
              this._handlers.output?.(message.stream === 'stderr' ? 'stderr' : 'stdout', message.data);
            }
            break;
          case 'input_request':
            this._handlers.inputRequest?.(typeof message.prompt === 'string' ? message.prompt : '');
            break;
          case 'display':
            if (typeof message.mime === 'string' && typeof message.data === 'string') {
              this._handlers.display?.({ mime: message.mime, data: message.data });
            }
            break;
          case 'result': {
            const { type: _type, ...result } = message;
            finish(() => resolve({ result: result as ILiveResult, streamed: true }));
            break;
          }
          case 'error': {
            const text = typeof message.message === 'string' ? message.message : 'the server refused a message';
            const aboutControl = /^(stdin|cancel):/.test(text);
            if (!started && !aboutControl) {
              // The run message itself was refused (bad limits, too many runs): nothing will run.
              finish(() =>
                reject(new SandboxRequestError(text, typeof message.status === 'number' ? message.status : 0))
              );
            } else {
              this._handlers.notice?.(text);
            }
            break;
          }
          default:
            break; // a newer server's message this client does not know: ignored
        }
      };
    });
  }

  private _send(message: object): boolean {
    const socket = this._socket;
    if (this._done || !socket || socket.readyState !== 1) {
      return false;
    }
    socket.send(JSON.stringify(message));
    return true;
  }

  /** Sends a line the program reads (the caller adds the newline). */
  sendStdin(data: string): boolean {
    return this._send({ type: 'stdin', data });
  }

  /** Ends the program's input (its next read gets end of file). */
  sendEof(): boolean {
    return this._send({ type: 'stdin', eof: true });
  }

  /** Asks the server to stop the run; its result (status `cancelled`) still ends the run. */
  cancel(): void {
    if (this._done) {
      return;
    }
    this._cancelRequested = true;
    this._send({ type: 'cancel' });
    // A server that never confirms: closing the socket stops the run there too.
    setTimeout(() => {
      if (!this._done && this._socket && this._socket.readyState === 1) {
        this._socket.close(4000, 'stopped: the server did not confirm the stop in time');
      }
    }, CANCEL_GRACE_MS);
  }
}
