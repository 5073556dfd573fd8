"""Markdown table (policy × context) from long_context_ppl.sh JSON lines: python3 table.py in.jsonl"""
import json, sys
rows, ctxs = {}, set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    ctx = r["result"]["ctx"]; ctxs.add(ctx)
    rows.setdefault(r["policy"], {})[ctx] = r["result"].get("perplexity")
ctxs = sorted(ctxs)
print("| policy | " + " | ".join(str(c) for c in ctxs) + " |")
print("| --- | " + " | ".join("---:" for _ in ctxs) + " |")
for p, v in rows.items():
    cells = []
    for c in ctxs:
        x = v.get(c)
        cells.append("—" if x is None else f"{x:.3f}")
    print(f"| {p} | " + " | ".join(cells) + " |")
