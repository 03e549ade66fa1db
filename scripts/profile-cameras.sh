#!/usr/bin/env bash
# A flat CPU profile of camstream under a bench scenario (issue 11): runs the scenario with the
# release binaries, records the server with `perf` (Debian `linux-perf`) for 15 s of its
# steady window, and writes the top symbols grouped by category, plus a flamegraph of the
# same samples next to it (OUT.svg, by inferno: `cargo install inferno`).
#
# Usage: scripts/profile-cameras.sh OUT.txt [scenario.toml]
# Needs: cargo build --release -p camstream -p camstream-bench; perf; python3.
set -euo pipefail
out=$1
scenario=${2:-bench/scenarios/cameras-100.toml}
command -v perf >/dev/null || { echo "perf is required: apt-get install -y linux-perf" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "inferno is required: cargo install inferno" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/camstream-bench run --scenario "$scenario" \
  --camstream-bin ./target/release/camstream --out "$work/run" --quiet >"$work/bench.log" 2>&1 &
bench=$!
# Ramp (10 cameras a second) and settle before recording.
sleep 22
pid=$(pgrep -P "$bench" -x camstream)
perf record -q -e cpu-clock -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep 15 2>/dev/null
wait "$bench"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf 2>/dev/null |
  inferno-flamegraph --title "camstream, $(basename "$scenario" .toml), $(git rev-parse --short HEAD)" \
  >"${out%.txt}.svg"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null >"$work/report.txt"
{
  echo "# perf record -e cpu-clock -F 999 -g -p <camstream pid> -- sleep 15 (steady window of camstream-bench run $(basename "$scenario" .toml)); flat profile"
  echo "# binary of $(git rev-parse --short HEAD); $(grep -m1 'server CPU per camera' "$work/run/report.md" | tr -d '|' | xargs)"
  python3 scripts/profile_group.py "$work/report.txt"
} >"$out"
echo "wrote $out and ${out%.txt}.svg"
