import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI, SandboxRequestError } from '../src/request';

/** Settings whose fetch answers with `reply` and records what was sent. */
function fakeServer(reply: (request: Request) => Response | Promise<Response>) {
  const sent: Request[] = [];
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/a%40b/',
    wsUrl: 'ws://127.0.0.1:8888/a%40b/',
    token: 'secret-token',
    appendToken: false,
    fetch: async (input: RequestInfo) => {
      const request = input as Request;
      sent.push(request);
      return reply(request);
    },
    Request,
    Headers
  } as any);
  return { settings, sent };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

test('POSTs JSON to the route under api/exec/v1 with the token and returns the answer', async () => {
  const { settings, sent } = fakeServer(() => json(200, { status: 'ok', stdout: 'hi\n' }));
  const answer = await requestAPI<any>('execute', { method: 'POST', body: JSON.stringify({ code: 'print("hi")' }) }, settings);
  assert.deepEqual(answer, { status: 'ok', stdout: 'hi\n' });
  assert.equal(sent.length, 1);
  // makeRequest may add a cache-busting query; the route is what matters.
  const url = new URL(sent[0].url);
  assert.equal(url.origin + url.pathname, 'http://127.0.0.1:8888/a%40b/api/exec/v1/execute');
  assert.equal(sent[0].method, 'POST');
  assert.equal(sent[0].headers.get('Authorization'), 'token secret-token');
  assert.deepEqual(JSON.parse(await sent[0].text()), { code: 'print("hi")' });
});

for (const [reason, cause] of [
  ['docker_unavailable', /^Sandbox unavailable: Docker is not running on the server \(Docker not available\)$/],
  ['image_missing', /^Sandbox unavailable: the executor image is missing on the server/],
  ['service_unreachable', /^Sandbox unavailable: the code execution service cannot be reached/],
  ['service_stopping', /^Sandbox unavailable: the code execution service is restarting/]
] as const) {
  test(`503 with reason ${reason} names that cause`, async () => {
    const { settings } = fakeServer(() => json(503, { message: 'Docker not available', reason }));
    await assert.rejects(requestAPI('execute', { method: 'POST', body: '{}' }, settings), (error: unknown) => {
      assert.ok(error instanceof SandboxRequestError);
      assert.equal(error.status, 503);
      assert.equal(error.reason, reason);
      assert.match(error.message, cause);
      return true;
    });
  });
}

test('503 without a known reason (a proxy page) does not guess a cause', async () => {
  const { settings } = fakeServer(() => new Response('<html>503 Service Unavailable</html>', { status: 503 }));
  await assert.rejects(requestAPI('execute', { method: 'POST', body: '{}' }, settings), (error: unknown) => {
    assert.ok(error instanceof SandboxRequestError);
    assert.equal(error.message, 'Sandbox unavailable');
    assert.doesNotMatch(error.message, /Docker/);
    return true;
  });
});

test('429 shows the server message, which says which limit and when', async () => {
  const { settings } = fakeServer(() =>
    json(429, { message: 'you already have 2 run(s) in progress; wait for one to finish' }, { 'Retry-After': '1' })
  );
  await assert.rejects(requestAPI('execute', { method: 'POST', body: '{}' }, settings), (error: unknown) => {
    assert.ok(error instanceof SandboxRequestError);
    assert.equal(error.status, 429);
    assert.equal(error.retryAfter, '1');
    assert.equal(error.message, 'you already have 2 run(s) in progress; wait for one to finish');
    return true;
  });
});

test('429 of the submission limit shows the wait the server names, not one of its own', async () => {
  const message = "you can submit 'strings-palindrome' again in 42 s (at most 5 submissions per 10 min)";
  const { settings } = fakeServer(() =>
    json(429, { message, reason: 'Too Many Requests' }, { 'Retry-After': '42' })
  );
  await assert.rejects(
    requestAPI('exercises/strings-palindrome/submit', { method: 'POST', body: '{}' }, settings),
    (error: unknown) => {
      assert.ok(error instanceof SandboxRequestError);
      assert.equal(error.retryAfter, '42');
      assert.equal(error.message, message);
      assert.doesNotMatch(error.message, /runs at once/i);
      return true;
    }
  );
});

test('429 without a server message (a proxy) says when from Retry-After', async () => {
  const { settings } = fakeServer(() =>
    new Response('<html>slow down</html>', { status: 429, headers: { 'Retry-After': '7' } })
  );
  await assert.rejects(requestAPI('execute', { method: 'POST', body: '{}' }, settings), (error: unknown) => {
    assert.ok(error instanceof SandboxRequestError);
    assert.equal(error.message, 'Too many requests: try again in 7 s.');
    return true;
  });
});

test('400 shows the server message that names the field', async () => {
  const { settings } = fakeServer(() => json(400, { message: 'memory_limit must be positive, got 0' }));
  await assert.rejects(requestAPI('execute', { method: 'POST', body: '{}' }, settings), /memory_limit must be positive, got 0/);
});

test('a proxy page that is not JSON still gives a readable message', async () => {
  const { settings } = fakeServer(() => new Response('<html>Bad Gateway</html>', { status: 502 }));
  await assert.rejects(requestAPI('docker/status', {}, settings), /Server error \(502\): see the server log/);
});

test('a network failure reads as "Cannot reach the Jupyter server"', async () => {
  const { settings } = fakeServer(() => {
    throw new TypeError('fetch failed');
  });
  await assert.rejects(requestAPI('docker/status', {}, settings), (error: unknown) => {
    assert.ok(error instanceof SandboxRequestError);
    assert.equal(error.status, 0);
    assert.match(error.message, /^Cannot reach the Jupyter server/);
    return true;
  });
});
