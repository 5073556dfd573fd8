#!/usr/bin/env python3
"""Summarizes a JFR recording's CPU samples by top frame, and by engine 'phase'.

Usage: jfr print --events jdk.ExecutionSample REC.jfr | python3 docs/tools/jfr-top.py
The phase is the first frame (from the top) in one of the engine's own packages, so time inside
Vector API or JDK helpers is charged to the engine method that called them."""
import collections
import re
import sys

top = collections.Counter()
phase = collections.Counter()
total = 0
frames = []


def flush():
    global total
    if not frames:
        return
    total += 1
    top[frames[0]] += 1
    for f in frames:
        if f.startswith("dev.longctx."):
            phase[f] += 1
            break
    else:
        phase["(outside dev.longctx)"] += 1


for line in sys.stdin:
    line = line.strip()
    if line.startswith("jdk.ExecutionSample"):
        flush()
        frames = []
    m = re.match(r"([\w.$]+)\.([\w$<>]+)\(", line)
    if m and "line:" in line:
        frames.append(m.group(1) + "." + m.group(2))
flush()
print(f"{total} samples")
print("| share | engine method (first dev.longctx frame) |")
print("| ---: | --- |")
for name, n in phase.most_common(15):
    print(f"| {100.0 * n / total:.1f}% | `{name}` |")
