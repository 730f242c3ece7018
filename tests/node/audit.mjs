// audit.mjs <graphql-url>
//
// Runs the GraphQL-over-HTTP conformance audit from `graphql-http` (auditServer)
// against a running server and prints one line per audit: `STATUS NAME`, plus
// the reason for every non-ok result.
// Exit code: 1 if any MUST audit has status 'error' (or the audit cannot run),
// 0 otherwise; SHOULD/MAY failures and warnings are reported but never fail.
// Last line: `N passed, M failed`, counting MUST audits only.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql-url>');
  process.exit(2);
}

const TIMEOUT_MS = 30_000;
const timer = setTimeout(() => {
  console.error(`audit did not finish within ${TIMEOUT_MS / 1000} s`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}, TIMEOUT_MS);

// Each request gets its own deadline so that one hanging request is reported
// by name instead of by the overall timeout.
const fetchFn = (input, init = {}) =>
  fetch(input, { ...init, signal: AbortSignal.timeout(10_000) });

let results;
try {
  results = await auditServer({ url, fetchFn });
} catch (err) {
  console.error(`audit could not run: ${err?.stack ?? err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
clearTimeout(timer);

let passed = 0;
let failed = 0;
for (const r of results) {
  console.log(`${r.status.toUpperCase()} ${r.name}`);
  if (r.status !== 'ok') console.log(`    reason: ${r.reason}`);
  if (r.name.startsWith('MUST')) {
    if (r.status === 'ok') passed++;
    else if (r.status === 'error') failed++;
  }
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
