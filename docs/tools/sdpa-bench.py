"""PyTorch's scaled_dot_product_attention on the shapes of CudaBench's attention table.

The baseline the GPU backend's attention kernels are compared with (issue 6, docs/PERFORMANCE.md):
32 query heads, 8 KV heads, head dim 128 (Llama-3.1-8B), a block of query rows at the end of a
context of N keys with lower-right causal masking, so the FLOP count is the one CudaBench uses:
4 · heads · headDim · Σ_t visible keys(t). Run by docs/tools/gpu-check.sh on the device machine:

    python3 docs/tools/sdpa-bench.py [--quick]
"""

import sys

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def timed(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def visible_keys(rows, ctx):
    return rows * (ctx - rows) + rows * (rows + 1) / 2.0


def main():
    quick = "--quick" in sys.argv
    contexts = [8192, 32768] if quick else [8192, 16384, 32768, 65536, 131072]
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    t = timed(lambda: b.copy_(a))
    print(f"| copy bandwidth (torch, read + write) | {2 * n / t / 1e9:.1f} GB/s |")
    del a, b
    print()
    print("| context | dtype | decode µs (1 query) | prefill TFLOP/s (128 rows) |"
          " prefill TFLOP/s (2048 rows) | gather k=2048 + SDPA decode µs |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    g = torch.Generator(device=dev).manual_seed(3)
    for ctx in contexts:
        for dtype in (torch.bfloat16, torch.float16):
            k = torch.randn(1, KV_HEADS, ctx, HEAD_DIM, device=dev, dtype=dtype, generator=g)
            v = torch.randn(1, KV_HEADS, ctx, HEAD_DIM, device=dev, dtype=dtype, generator=g)
            row = [str(ctx), str(dtype).replace("torch.", "")]
            q1 = torch.randn(1, HEADS, 1, HEAD_DIM, device=dev, dtype=dtype, generator=g)
            t = timed(lambda: F.scaled_dot_product_attention(q1, k, v, enable_gqa=True))
            row.append(f"{t * 1e6:.1f}")
            for rows in (128, 2048):
                q = torch.randn(1, HEADS, rows, HEAD_DIM, device=dev, dtype=dtype, generator=g)
                mask = causal_lower_right(rows, ctx)
                try:
                    t = timed(lambda: F.scaled_dot_product_attention(
                        q, k, v, attn_mask=mask, enable_gqa=True))
                except RuntimeError:
                    # GQA with a causal bias is not served by every backend: expand KV heads.
                    ke = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
                    ve = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
                    t = timed(lambda: F.scaled_dot_product_attention(q, ke, ve, attn_mask=mask))
                    del ke, ve
                flops = 4.0 * HEADS * HEAD_DIM * visible_keys(rows, ctx)
                row.append(f"{flops / t / 1e12:.1f}")
            sel = torch.randperm(ctx, device=dev)[:2048].sort().values

            def sparse():
                ks = k.index_select(2, sel)
                vs = v.index_select(2, sel)
                return F.scaled_dot_product_attention(q1, ks, vs, enable_gqa=True)

            row.append(f"{timed(sparse) * 1e6:.1f}")
            print("| " + " | ".join(row) + " |", flush=True)
            del k, v


if __name__ == "__main__":
    main()
