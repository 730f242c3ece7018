// Starts GraphiQL against this server's /graphql (HTTP for queries and
// mutations, WebSocket for subscriptions). Loaded by index.html; no inline
// script, so the page runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  var PLACEHOLDER = "Bearer <token>";
  var http = new URL("/graphql", window.location.href).href;
  var ws = http.replace(/^http/, "ws");
  // For a subscription, GraphiQL sends the headers pane's entries as the
  // WebSocket's connection_init payload, so {"Authorization": "Bearer …"}
  // signs the socket in the same way it signs HTTP requests.
  var graphiqlFetcher = GraphiQL.createFetcher({ url: http, subscriptionUrl: ws });
  // GraphiQL's schema query follows type wrappers nine levels deep, past the
  // server's query depth limit (max-depth); six levels cover every type of
  // this schema ([[T!]!]! is five).
  var typeRef = "kind name";
  for (var i = 0; i < 6; i++) typeRef = "kind name ofType { " + typeRef + " }";
  function shallowIntrospection(params) {
    if (params.operationName !== "IntrospectionQuery") return params;
    var query = params.query.replace(
      /fragment TypeRef on __Type \{[\s\S]*$/,
      "fragment TypeRef on __Type { " + typeRef + " }\n"
    );
    return Object.assign({}, params, { query: query });
  }
  // Until the placeholder is replaced with a real token, requests go out
  // without it (anonymous) instead of failing as an invalid token.
  function fetcher(params, opts) {
    var headers = Object.assign({}, opts && opts.headers);
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === "authorization" && String(headers[name]).trim() === PLACEHOLDER) {
        delete headers[name];
      }
    });
    return graphiqlFetcher(shallowIntrospection(params), Object.assign({}, opts, { headers: headers }));
  }
  var defaultQuery = [
    "# The CRM's GraphQL API.",
    "#",
    "# 1. Sign in: run SignIn below with the first",
    "#    admin's password (shown once in the server",
    "#    log; `crm user set-password` sets a new one).",
    "# 2. Copy the token into the Headers pane below,",
    "#    in place of <token>. Queries, mutations and",
    "#    subscriptions then run as you.",
    "",
    "mutation SignIn {",
    '  login(email: "admin@localhost", password: "") {',
    "    token",
    "    expiresAt",
    "  }",
    "}",
    "",
    "query Me {",
    "  me {",
    "    email",
    "    roles",
    "  }",
    "}",
    ""
  ].join("\n");
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: JSON.stringify({ Authorization: PLACEHOLDER }, null, 2),
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false
    })
  );
})();
