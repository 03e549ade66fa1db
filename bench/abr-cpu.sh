#!/usr/bin/env bash
# CPU of one ABR camera (issue 14): the release server with one 720p30 camera (the e2e
# test clip, ~2 Mbit/s, looped by ffmpeg -re -c copy), measured twice in one run: without
# ABR, then with --abr-all-cameras (default ladder: 480p + 240p). Reports the server's CPU
# and the transcoder's (both from /proc, utime+stime over the window), in cores.
#
# Usage: bench/abr-cpu.sh [seconds per window, default 30]   (after `cargo build --release`
# and one `cargo test --test dataplane abr`, which makes the clip)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
bin=target/release/camstream
clip=target/testdata/e2e/av-long-v1.flv
[ -x "$bin" ] || { echo "build first: cargo build --release -p camstream" >&2; exit 1; }
[ -f "$clip" ] || { echo "no clip: run cargo test --test dataplane abr once" >&2; exit 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() {
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  "$bin" serve --data-dir "$dir" --allow-any-key --rtmp-addr 127.0.0.1:19390 \
    --http-addr 127.0.0.1:18090 --rtmps-addr off --https-addr off --webrtc-addr off "$@" \
    > "$dir/log" 2>&1 &
  local server=$!
  sleep 2
  ffmpeg -hide_banner -v error -re -stream_loop -1 -i "$clip" -c copy -f flv \
    rtmp://127.0.0.1:19390/live/cam1 &
  local pub=$!
  sleep 15 # the ladder starts and settles
  local tr; tr=$(pgrep -P "$server" -f "pipe:0" || true)
  local s0 t0=0; s0=$(ticks "$server"); [ -n "$tr" ] && t0=$(ticks "$tr")
  sleep "$secs"
  local s1 t1=0; s1=$(ticks "$server"); [ -n "$tr" ] && t1=$(ticks "$tr")
  local variants; variants=$(curl -s http://127.0.0.1:18090/hls/cam1/master.m3u8 | grep -c STREAM-INF || true)
  kill "$pub"; wait "$pub" 2>/dev/null || true
  kill "$server"; wait "$server" 2>/dev/null || true
  awk -v l="$label" -v s=$((s1 - s0)) -v t=$((t1 - t0)) -v n="$secs" -v v="$variants" \
    'BEGIN { printf "%-10s server %.3f cores, transcoder %.3f cores, variants in master.m3u8: %d\n", l, s/100/n, t/100/n, v }'
  rm -rf "$dir"
}
echo "camstream $("$bin" --version), $(nproc) cores, $secs s windows"
run "no ABR"
run "ABR" --abr-all-cameras
