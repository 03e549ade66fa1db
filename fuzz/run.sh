#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30) on the seed corpus committed in
# fuzz/corpus/<target>/; installs cargo-fuzz if missing.
#
#   fuzz/run.sh 600                       # a real session with AddressSanitizer (make fuzz)
#   FUZZ_SANITIZER=none fuzz/run.sh 20    # CI smoke run (make fuzz-smoke, in make test)
#
# Stable toolchain: cargo-fuzz asks rustc for unstable flags (-Zsanitizer=address and the
# coverage passes); RUSTC_BOOTSTRAP=1 lets the stable compiler take them, so no nightly is
# needed. Without a sanitizer the build is the same instrumented release build, minus ASan:
# what CI can afford (build times in README "Fuzzing").
#
# New inputs the fuzzer finds go to fuzz/target/corpus/<target> (not committed; the seeds
# stay small); a crash stops the run, lands in fuzz/artifacts/<target>/ and fails the script.
# Each build flavour has its own target directory: their compiler flags differ, so a shared
# one would be rebuilt from scratch at every switch.
set -euo pipefail

seconds="${1:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

target_dir="$here/target/$sanitizer"
start=$(date +%s)
cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"
echo "== build (sanitizer $sanitizer): $(($(date +%s) - start)) s"

for target in $(cargo fuzz list); do
    work="$here/target/corpus/$target"
    mkdir -p "$work" "corpus/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
        "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
