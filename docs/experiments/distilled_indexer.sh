#!/usr/bin/env bash
# A distilled lightning indexer (ALGORITHMS.md §5.3) against the training-free own-heads selector:
# distills an indexer for MODEL on TEXT past its first SKIP characters (the perplexity below
# scores the first EVAL_CHARS, so no evaluated token was trained on), then scores perplexity at
# each context for dense, SelfExtend and top-k with either indexer.
# Usage: docs/experiments/distilled_indexer.sh MODEL TEXT EVAL_CHARS OUT_DIR CONTEXTS...
# Prints the distillation's report on stderr and one JSON object per perplexity run on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=$1 text=$2 eval_chars=$3 out=$4; shift 4
mkdir -p "$out"
tail -c +"$((eval_chars + 1))" "$text" > "$out/train.txt"
"$ROOT/longctx" distill-indexer -m "$model" -f "$out/train.txt" -o "$out/indexer.gguf" \
  ${DISTILL_ARGS:-} 1>&2
ONLY='^(dense|self-extend G=32 w=256|own-heads|distilled)' INDEXER="$out/indexer.gguf" \
  "$ROOT/docs/experiments/long_context_ppl.sh" "$model" "$text" "$eval_chars" "$@"
