#!/usr/bin/env bash
# Regenerates the Go and TypeScript code of buf.gen.yaml into a scratch directory and fails if it
# differs from the checked-in clients/go/gen and clients/ts/src/gen (stale, hand-edited, missing or
# extra files). Generating aside leaves the working tree alone, so uncommitted work is never
# touched and the check works on an export without .git.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
node_modules/.bin/buf generate --output "$scratch"
status=0
for dir in clients/go/gen clients/ts/src/gen; do
  if ! diff -r "$scratch/$dir" "$dir" >"$scratch/diff.txt"; then
    echo "Generated code in $dir is stale:" >&2
    head -40 "$scratch/diff.txt" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "Run \`make generate\` and commit the result." >&2
else
  echo "clients/go/gen and clients/ts/src/gen are up to date with protos/"
fi
exit "$status"
