#!/usr/bin/env bash
# Vendors the web UI's front-end pieces from the npm registry, pinned by version and checked by
# SHA-256, so that the server never fetches anything at run time and works offline.
#
#   scripts/vendor.sh          fetch the pinned packages and (re)write the vendored files
#   scripts/vendor.sh --check  fetch them and fail if a committed file differs
#
# htmx.org ships in the package (src/shipyard/server/ui/static/vendor); axe-core is only for
# the accessibility test (tests/ui/vendor). Bumping a version: edit it below, run without
# --check, review the diff, commit the files together with SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX=htmx.org@2.0.11
AXE=axe-core@4.11.4
UI=src/shipyard/server/ui/static/vendor
TESTS=tests/ui/vendor

check=0
[ "${1:-}" = "--check" ] && check=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # package file destination
  (cd "$work" && npm pack --silent "$1" >/dev/null)
  local tarball
  tarball=$(ls "$work"/*.tgz)
  tar -xzf "$tarball" -C "$work" "package/$2"
  rm "$tarball"
  if [ "$check" = 1 ]; then
    cmp -s "$work/package/$2" "$3" || { echo "error: $3 differs from $1 ($2)" >&2; exit 1; }
  else
    mkdir -p "$(dirname "$3")"
    cp "$work/package/$2" "$3"
  fi
  rm -rf "$work/package"
}

fetch "$HTMX" dist/htmx.min.js "$UI/htmx.min.js"
fetch "$HTMX" LICENSE "$UI/htmx.LICENSE"
fetch "$AXE" axe.min.js "$TESTS/axe.min.js"
fetch "$AXE" LICENSE "$TESTS/axe.LICENSE"

sums() { (cd "$1" && sha256sum -- * | grep -v SHA256SUMS); }
if [ "$check" = 1 ]; then
  (cd "$UI" && sha256sum --quiet -c SHA256SUMS) && (cd "$TESTS" && sha256sum --quiet -c SHA256SUMS)
  echo "vendored files match $HTMX and $AXE"
else
  sums "$UI" > "$UI/SHA256SUMS.tmp" && mv "$UI/SHA256SUMS.tmp" "$UI/SHA256SUMS"
  sums "$TESTS" > "$TESTS/SHA256SUMS.tmp" && mv "$TESTS/SHA256SUMS.tmp" "$TESTS/SHA256SUMS"
  echo "vendored $HTMX into $UI and $AXE into $TESTS"
fi
