#!/usr/bin/env bash
# Re-fetches the IDE's third-party files from the npm registry (`npm pack`,
# which checks each tarball's integrity against the registry) and records
# their versions and SHA-256 sums in SHA256SUMS. The server embeds these files
# (gateway/src/ide.rs), so the IDE works without internet access.
# To upgrade: change a version below, run this script, review the diff,
# and update the file names in gateway/src/ide.rs and index.html.
set -euo pipefail
cd "$(dirname "$0")"

REACT=18.3.1
GRAPHIQL=3.8.3 # the last 3.x; 4.x no longer ships a UMD build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { # package version file-in-package target
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  mkdir -p "$work/$1"
  tar xzf "$work/$1-$2.tgz" -C "$work/$1"
  cp "$work/$1/package/$3" "$4"
}
fetch react "$REACT" umd/react.production.min.js "react-$REACT.production.min.js"
fetch react-dom "$REACT" umd/react-dom.production.min.js "react-dom-$REACT.production.min.js"
fetch graphiql "$GRAPHIQL" graphiql.min.js "graphiql-$GRAPHIQL.min.js"
cp "$work/graphiql/package/graphiql.min.css" "graphiql-$GRAPHIQL.min.css"
# Source maps are left out: they reference files not served here.
sed -i '/^\/\/# sourceMappingURL=/d' ./*.min.js
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' ./*.min.css

{
  echo "# npm packages: react@$REACT react-dom@$REACT graphiql@$GRAPHIQL (fetched by fetch.sh; source map comments removed)"
  sha256sum react-*.js graphiql-*
} > SHA256SUMS
echo "fetched; review: git diff --stat -- ."
