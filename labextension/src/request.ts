/**
 * The one way this extension talks to the server: `requestAPI` over
 * `ServerConnection.makeRequest`, turning every failure into a `SandboxRequestError` whose
 * message a student can read (never a stack trace or a bare status code).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Base path of the REST API under the server's base URL. */
export const API_NAMESPACE = 'api/exec/v1';

/**
 * A failed request: `status` is the HTTP status, 0 when the server could not be reached;
 * `reason` is the server's word for the cause (e.g. `service_unreachable`), when it sent one.
 */
export class SandboxRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retryAfter: string | null = null,
    readonly reason: string | null = null
  ) {
    super(message);
    this.name = 'SandboxRequestError';
  }
}

/** What is unavailable, by the `reason` of a 503 answer (the server names the cause). */
const UNAVAILABLE_CAUSES: Record<string, string> = {
  docker_unavailable: 'Docker is not running on the server',
  image_missing: 'the executor image is missing on the server',
  service_unreachable: 'the code execution service cannot be reached',
  service_stopping: 'the code execution service is restarting',
  sandbox_unavailable: 'the sandbox cannot run code right now'
};

/**
 * The message shown for an HTTP error answer. The server's own message (JSON `{message}`) is
 * kept where it says more than a generic phrase could, e.g. which field was wrong.
 */
export function describeHttpError(
  status: number,
  serverMessage: string,
  retryAfter: string | null = null,
  reason: string | null = null
): string {
  switch (status) {
    case 503: {
      // The cause as the server names it; without one (an older server, a proxy's page) no guess.
      const cause = reason && UNAVAILABLE_CAUSES[reason];
      const detail = serverMessage ? ` (${serverMessage})` : '';
      return cause ? `Sandbox unavailable: ${cause}${detail}` : `Sandbox unavailable${detail}`;
    }
    case 429: {
      // The server says which limit was hit (runs at once, or submissions of this exercise) and
      // when to try again, the same wait as its Retry-After; a proxy's 429 has only the header.
      if (serverMessage) {
        return serverMessage;
      }
      const wait = retryAfter ? `try again in ${retryAfter} s` : 'try again in a moment';
      return `Too many requests: ${wait}.`;
    }
    case 403:
      return 'Not allowed: your session may have expired; reload the page and log in again.';
    case 404:
      return serverMessage || 'Not found on the server.';
    case 413:
      return `Too big for the sandbox: ${serverMessage || 'the code or input is over the size limit'}`;
    default:
      if (status >= 500) {
        return `Server error (${status}): ${serverMessage || 'see the server log'}`;
      }
      return serverMessage || `Request failed (HTTP ${status})`;
  }
}

/**
 * Calls `endpoint` (relative to the API base, e.g. `execute`) and returns the parsed JSON.
 *
 * @param endpoint route under `api/exec/v1/`
 * @param init fetch options; a `body` is sent as is (callers pass `JSON.stringify(...)`)
 * @param settings server connection settings (tests inject a fake `fetch` here)
 * @throws SandboxRequestError with a readable message on a network error or any non-2xx answer
 */
export async function requestAPI<T>(
  endpoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch {
    throw new SandboxRequestError(
      'Cannot reach the Jupyter server: check your connection, or whether the server is still running.',
      0
    );
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null; // a proxy's HTML error page: the status alone decides the message
    }
  }
  if (!response.ok) {
    const serverMessage = data && typeof data.message === 'string' ? data.message : '';
    const retryAfter = response.headers.get('Retry-After');
    const reason = data && typeof data.reason === 'string' ? data.reason : null;
    throw new SandboxRequestError(
      describeHttpError(response.status, serverMessage, retryAfter, reason),
      response.status,
      retryAfter,
      reason
    );
  }
  if (data === null && text.length > 0) {
    throw new SandboxRequestError('The server sent an answer that is not JSON.', response.status);
  }
  return data as T;
}
