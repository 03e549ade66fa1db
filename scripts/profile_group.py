#!/usr/bin/env python3
"""Groups a flat `perf report --no-children --sort dso,symbol --stdio` by category (the
categories of bench/results/profile-cameras-100) and prints the top symbols."""
import re
import sys

CATEGORIES = [
    ("kernel", lambda dso, sym: dso.startswith("[kernel")),
    ("bytes refcount/split", lambda dso, sym: re.search(r"bytes::", sym)),
    ("allocator", lambda dso, sym: re.search(r"malloc|_int_free|\bfree\b|unlink_chunk|realloc|cfree|tcache|mi_", sym)),
    ("memcpy", lambda dso, sym: re.search(r"memmove|memcpy|memset", sym)),
    ("segmenter/mux/demux", lambda dso, sym: re.search(r"::hls::|::ts::|::fmp4::|::flv::", sym)),
    ("rtmp chunk reader/session", lambda dso, sym: re.search(r"::rtmp::|rml_rtmp", sym)),
    ("tokio timer", lambda dso, sym: re.search(r"tokio::runtime::time|tokio::time", sym)),
    ("tokio scheduler/io", lambda dso, sym: re.search(r"tokio::", sym)),
    ("clock", lambda dso, sym: re.search(r"clock_gettime|Instant::now|SystemTime::now", sym)),
    ("cancellation/notify", lambda dso, sym: re.search(r"cancellation|Notify", sym)),
]

rows = []
samples = None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r"# Samples: (\S+)", line)
    if m:
        samples = m.group(1)
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
groups = {}
for pct, dso, sym in rows:
    name = next((n for n, f in CATEGORIES if f(dso, sym)), "other user")
    groups[name] = groups.get(name, 0.0) + pct
print(f"# Samples: {samples}")
print("## by category (% of the server's samples)")
print(f"{sum(groups.values()):7.2f}% total")
for name, pct in sorted(groups.items(), key=lambda x: -x[1]):
    print(f"{pct:7.2f}%  {name}")
print("## top symbols")
for pct, dso, sym in rows[:40]:
    name = sym.split("  ")[0]
    print(f"{pct:.2f}% {dso} {name}")
