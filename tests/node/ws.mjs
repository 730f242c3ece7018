// ws.mjs <graphql-url> <bearer-token>
//
// Checks the graphql-transport-ws endpoint (same path as HTTP, http -> ws)
// with the reference `graphql-ws` client:
//   1. a query `{ __typename }` over the socket returns { data: { __typename: 'Query' } };
//   2. `events(after: "0", topics: ["identity"])` replays stored events (at
//      least one); every cursor is a string and cursors strictly increase;
//   3. a client whose connection_init carries a bad token is closed with 4403.
// Everything is time-boxed (15 s overall). Last line: `N passed, M failed`;
// the exit code is non-zero on any failure.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [httpUrl, token] = process.argv.slice(2);
if (!httpUrl || !token) {
  console.error('usage: node ws.mjs <graphql-url> <bearer-token>');
  process.exit(2);
}
const url = httpUrl.replace(/^http/, 'ws');

let passed = 0;
let failed = 0;
const started = Date.now();
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  const at = `(at ${Date.now() - started} ms)`;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name} ${at}${ok || !detail ? '' : `\n    ${detail}`}`);
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

const overall = setTimeout(() => {
  check('everything finished within 15 s', false, 'timed out');
  finish();
}, 15_000);

// Rejects if `promise` has not settled after `ms`.
function within(ms, what, promise) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

// Errors, CloseEvents and ws ErrorEvents all end up here; make them readable.
const describe = (e) =>
  e?.code !== undefined ? `socket closed ${e.code} ${e.reason ?? ''}`.trim()
    : e?.message ?? e?.error?.message ?? JSON.stringify(e);

function makeClient(bearer, on = {}) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${bearer}` },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: () => {}, // failures are reported by the checks below
    on,
  });
}

// Runs one operation; resolves with every result received until it completes.
function run(client, query) {
  return new Promise((resolve, reject) => {
    const results = [];
    client.subscribe({ query }, {
      next: (r) => results.push(r),
      error: reject,
      complete: () => resolve(results),
    });
  });
}

const client = makeClient(token);

// 1. query over the socket
try {
  const results = await within(5_000, 'query', run(client, '{ __typename }'));
  const got = JSON.stringify(results);
  check('query { __typename } returns Query',
    got === JSON.stringify([{ data: { __typename: 'Query' } }]), `got ${got}`);
} catch (e) {
  check('query { __typename } returns Query', false, describe(e));
}

// 2. subscription replay from cursor "0"
try {
  const events = await within(5_000, 'subscription', new Promise((resolve, reject) => {
    const events = [];
    let dispose;
    dispose = client.subscribe(
      { query: 'subscription { events(after: "0", topics: ["identity"]) { cursor kind entityType } }' },
      {
        next: (r) => {
          if (r.errors) return reject(new Error(`errors: ${JSON.stringify(r.errors)}`));
          events.push(r.data.events);
          // Once the first event is in, give the replay a moment to deliver
          // the rest of the backlog, then unsubscribe.
          if (events.length === 1) setTimeout(() => { dispose(); resolve(events); }, 250);
        },
        error: reject,
        complete: () => resolve(events),
      },
    );
  }));
  console.log(`    received ${events.length} event(s): ` +
    events.map((e) => `${e.cursor}:${e.kind}`).join(', '));
  check('subscription replays at least one stored event', events.length >= 1);
  const bad = events.find((e) => typeof e.cursor !== 'string');
  check('every cursor is a string', !bad, `got ${JSON.stringify(bad)}`);
  if (!bad) {
    const i = events.findIndex((e, i) => i > 0 && BigInt(e.cursor) <= BigInt(events[i - 1].cursor));
    check('cursors strictly increase', i < 0,
      i < 0 ? '' : `cursor ${events[i].cursor} follows ${events[i - 1].cursor}`);
  }
} catch (e) {
  check('subscription replays at least one stored event', false, describe(e));
}
await client.dispose();

// 3. a bad token closes the connection with 4403
let closedWith;
const badClient = makeClient('nope', { closed: (e) => { closedWith ??= e; } });
try {
  await within(5_000, 'bad-token client', run(badClient, '{ __typename }'));
  check('bad token closes the socket with 4403', false, 'the query succeeded');
} catch (e) {
  const code = closedWith?.code ?? e?.code;
  check('bad token closes the socket with 4403', code === 4403,
    `closed event: ${describe(closedWith)}; operation error: ${describe(e)}`);
}
await badClient.dispose();

clearTimeout(overall);
finish();
