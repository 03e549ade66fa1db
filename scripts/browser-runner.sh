#!/usr/bin/env bash
# Installs the headless-Chromium runners (tests/browser: hls.js and WHEP pages, Playwright
# driving Debian's /usr/bin/chromium) into DIR for the benchmarks, e.g.
#   scripts/browser-runner.sh target/bench-browser
#   camstream-bench webrtc --browser-runner target/bench-browser
# The e2e tests install their own copy (tests/common/browser.rs). npm ci runs only when the
# lock file changed; the runner files are always refreshed.
set -euo pipefail
dir=${1:?usage: scripts/browser-runner.sh DIR}
src="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
mkdir -p "$dir"
if ! cmp -s "$src/package-lock.json" "$dir/node_modules/.camstream-lock"; then
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
  cp "$src/package-lock.json" "$dir/node_modules/.camstream-lock"
fi
cp "$src"/*.mjs "$src"/*.html "$dir/"
