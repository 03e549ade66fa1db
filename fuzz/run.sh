#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30); installs cargo-fuzz if missing.
#
#   fuzz/run.sh 5      # CI smoke run
#   fuzz/run.sh 600    # a real session; crashes land in fuzz/artifacts/<target>/
#
# Builds go to fuzz/target (sanitizer flags would invalidate any shared target directory).
# Needs a nightly toolchain (`rustup toolchain install nightly`).
set -euo pipefail

seconds="${1:-30}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$(cargo +nightly fuzz list)
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    cargo +nightly fuzz run --target-dir "$here/target" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
