#!/usr/bin/env bash
# One script for a lent GPU (< 8 min on one H200): every method one short epoch of conv6 on synthetic CIFAR
# and of resnet18 on --device cuda (bf16 autocast: connpack.trainers.loop), the step-time ratios on CUDA,
# top-k vs kthvalue vs sort on CUDA at 1e5..1e7 scores, and a .cpk trained on CUDA unpacked on CPU.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine
#   bash benchmarks/gpu_check.sh cpu        # smoke test anywhere (~ minutes on 2 cores): tiny sizes
set -euo pipefail
DEVICE=${1:-cuda}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT=${OUT:-$(mktemp -d)}
if [ "$DEVICE" = cpu ]; then  # smoke: the same steps, small enough for a laptop
  LIMIT=64; WIDTH=0.125; STEPS=3; SIZES="100000 1000000"; EXTRA=(--iterations 1)
else
  LIMIT=2000; WIDTH=1.0; STEPS=30; SIZES="100000 1000000 10000000"; EXTRA=(--iterations 1)
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
echo "== gpu_check on $DEVICE ($(date -u +%H:%M:%S)); outputs in $OUT"
"$PY" - <<PYEOF
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PYEOF

echo "== 1. every method, one short epoch: conv6 and resnet18 on synthetic CIFAR"
for arch in conv6 resnet18; do
  for method in baseline prune flip edge-popup asni imp; do
    extra=()
    [ "$method" = imp ] && extra=("${EXTRA[@]}")
    t0=$SECONDS
    "$PY" -m connpack train --method "$method" --arch "$arch" --width "$WIDTH" --dataset synthetic-cifar \
      --epochs 1 --limit "$LIMIT" --device "$DEVICE" "${extra[@]}" -o "$OUT/$arch-$method.pt" -q | tail -1
    echo "   $arch $method: $((SECONDS - t0)) s"
  done
done

echo "== 2. step time / dense on $DEVICE"
"$PY" benchmarks/bench_step_time.py --device "$DEVICE" --arch lenet300 conv6 --steps "$STEPS"

echo "== 3. top-k vs kthvalue vs sort on $DEVICE"
"$PY" - "$DEVICE" $SIZES <<'PYEOF'
import statistics, sys, time
import torch
device, sizes = torch.device(sys.argv[1]), [int(s) for s in sys.argv[2:]]
def timed(fn, reps=10):
    ts = []
    for i in range(reps + 2):
        if device.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); fn()
        if device.type == "cuda": torch.cuda.synchronize()
        if i >= 2: ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)
print(f"{'scores':>10s} {'sort ms':>9s} {'kthvalue ms':>12s} {'topk ms':>9s}   (k = half kept)")
for n in sizes:
    s = torch.randn(n, device=device).abs()
    k = n // 2
    srt = timed(lambda: torch.sort(s, descending=True).values[k - 1])
    kth = timed(lambda: torch.kthvalue(s.cpu() if device.type == "mps" else s, n - k + 1).values)
    top = timed(lambda: torch.topk(s, k, sorted=False).values.min())
    print(f"{n:10d} {srt:9.3f} {kth:12.3f} {top:9.3f}")
PYEOF

echo "== 4. a .cpk trained on $DEVICE unpacks to the same outputs on CPU"
for method in edge-popup flip; do
  "$PY" benchmarks/cpk_device_check.py --device "$DEVICE" --method "$method" --arch conv6 --width "$WIDTH" --limit "$LIMIT"
done
echo "== done ($(date -u +%H:%M:%S))"
