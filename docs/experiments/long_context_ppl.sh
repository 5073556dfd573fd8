#!/usr/bin/env bash
# Perplexity against context length for dense, SelfExtend and sparse attention policies.
# Usage: docs/experiments/long_context_ppl.sh MODEL TEXT CHARS CONTEXTS... > results.jsonl
# Every context scores the same first CHARS characters of TEXT (windows of ctx tokens, each with
# BOS), so the numbers of one row are comparable. One JSON object per run on stdout.
# ONLY=regex restricts the policies to the labels it matches. INDEXER=FILE (an indexer file from
# distill-indexer) adds top-k rows at k = 32, 64, 128 for the training-free own-heads selector and
# for that distilled indexer, alone and with SelfExtend G=32 w=256.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=$1 text=$2 chars=$3; shift 3
policies=(
  "dense|--attention dense"
  "self-extend G=4 w=128|--attention self-extend --group-size 4 --neighbor-window 128"
  "self-extend G=8 w=256|--attention self-extend --group-size 8 --neighbor-window 256"
  "self-extend G=16 w=256|--attention self-extend --group-size 16 --neighbor-window 256"
  "self-extend G=32 w=256|--attention self-extend --group-size 32 --neighbor-window 256"
  "indexer-topk k=128|--attention indexer-topk --top-k 128"
  "indexer-topk k=256|--attention indexer-topk --top-k 256"
  "indexer-topk k=512|--attention indexer-topk --top-k 512"
  "block-topk B=64 n=4 (quest)|--attention block-topk --block-size 64 --top-blocks 4"
  "indexer-topk k=256 + self-extend G=32 w=256|--attention indexer-topk --top-k 256 --group-size 32 --neighbor-window 256"
)
if [[ -n "${INDEXER:-}" ]]; then
  for k in 32 64 128; do
    se="--group-size 32 --neighbor-window 256"
    policies+=(
      "own-heads k=$k|--attention indexer-topk --top-k $k"
      "distilled k=$k|--attention indexer-topk --top-k $k --indexer $INDEXER"
      "own-heads k=$k + self-extend G=32 w=256|--attention indexer-topk --top-k $k $se"
      "distilled k=$k + self-extend G=32 w=256|--attention indexer-topk --top-k $k --indexer $INDEXER $se"
    )
  done
fi
for ctx in "$@"; do
  for p in "${policies[@]}"; do
    label=${p%%|*} args=${p#*|}
    [[ -n "${ONLY:-}" && ! "$label" =~ $ONLY ]] && continue
    # shellcheck disable=SC2086
    if out=$("$ROOT/longctx" perplexity -m "$model" -f "$text" --chars "$chars" --bos -c "$ctx" \
        $args --json 2>/dev/null); then
      printf '{"model":"%s","text":"%s","policy":"%s","result":%s}\n' \
        "$(basename "$model")" "$(basename "$text")" "$label" "$out"
    else
      printf '{"model":"%s","text":"%s","policy":"%s","result":{"ctx":%s,"perplexity":null}}\n' \
        "$(basename "$model")" "$(basename "$text")" "$label" "$ctx"
    fi
  done
done
