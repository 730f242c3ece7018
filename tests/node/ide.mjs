// Loads the GraphQL IDE at <base-url> in headless Chromium with every other
// host cut off, runs `{ __typename }` through it and, given a token, a
// subscription signed in through the headers pane. Fails if the page asked
// any other host for anything, broke its Content-Security-Policy or threw.
//
//   node tests/node/ide.mjs http://127.0.0.1:PORT/ [TOKEN]
//
// Chromium: $CHROMIUM or /usr/bin/chromium (Debian's `chromium` package;
// tests/run installs it). puppeteer-core never downloads a browser.
import puppeteer from "puppeteer-core";

const [base, token] = process.argv.slice(2);
if (!base) {
  console.error("usage: node ide.mjs <base-url> [token]");
  process.exit(2);
}
const origin = new URL(base).origin;
const host = new URL(base).hostname;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    // Names resolve to nothing but the service's own host.
    `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${host}`,
  ],
});

const offHost = [];
const problems = [];
let failed = false;
function fail(message) {
  failed = true;
  console.error("FAIL:", message);
}

try {
  const page = await browser.newPage();
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    const url = req.url();
    if (url.startsWith("data:") || url.startsWith("blob:") || new URL(url).origin === origin) {
      req.continue();
    } else {
      offHost.push(url);
      req.abort("blockedbyclient");
    }
  });
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));

  await page.goto(base, { waitUntil: "load", timeout: 60_000 });
  await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 60_000 });

  const headers = await page.evaluate(
    () => document.querySelector(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")?.CodeMirror.getValue() ?? "",
  );
  if (!headers.includes('"Authorization": "Bearer <token>"')) {
    fail(`the headers pane is not prefilled with the bearer placeholder: ${JSON.stringify(headers)}`);
  }

  // Runs a named operation through the IDE and waits for the response pane
  // to contain `expect`.
  async function run(name, query, headersText, expect) {
    await page.evaluate(
      (q, h) => {
        document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(q);
        if (h !== null) document.querySelector(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror").CodeMirror.setValue(h);
      },
      query,
      headersText,
    );
    // GraphiQL reads the edited document a moment later: run it once the
    // editor knows the new operation.
    await page.waitForFunction(
      (n) => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.operationName === n,
      { timeout: 60_000 },
      name,
    );
    // Run it with the keyboard shortcut rather than a click: the pointer
    // would hover the button and open its tooltip. A run started while the
    // IDE is still settling (loading the schema) can be lost, so it is
    // started again, at most a few times, until the answer shows.
    const answered = () =>
      page.waitForFunction(
        (e) => (document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "").includes(e),
        { timeout: 15_000 },
        expect,
      );
    let ok = false;
    for (let attempt = 0; attempt < 4 && !ok; attempt++) {
      await page.evaluate(() => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.focus());
      await page.keyboard.down("Control");
      await page.keyboard.press("Enter");
      await page.keyboard.up("Control");
      try {
        await answered();
        ok = true;
      } catch {
        // not yet: start it again
      }
    }
    if (ok) {
      console.log(`ok: ${query.split("\n")[0]}`);
    } else {
      const got = await page.evaluate(
        () => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "",
      );
      fail(`no ${JSON.stringify(expect)} in the response to ${query}:\n${got}`);
    }
  }

  await run("Typename", "query Typename { __typename }", null, '"__typename": "Query"');
  if (token) {
    await run(
      "Events",
      'subscription Events { events(after: "0", topics: ["identity"]) { cursor kind } }',
      JSON.stringify({ Authorization: `Bearer ${token}` }),
      '"cursor"',
    );
  }
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}

if (offHost.length) fail(`requests left for other hosts:\n  ${offHost.join("\n  ")}`);
if (problems.length) fail(problems.join("\n"));
if (failed) process.exit(1);
console.log("the IDE works offline");
