#!/usr/bin/env bash
# One call on a lent GPU machine (Python 3.12, a CUDA build of torch preinstalled, no MLflow/Prefect/DVC/GX,
# no network; at most 8 minutes): the tests that exercise the CUDA path, then the serving, methods and plateau
# benchmarks on the GPU. Figures go to bench/results/gpu/ (summary.md, serving-cuda.*, methods-cuda.*, plateau-cuda.*).
#
#     bash bench/gpu.sh            # PYTHON=python3.12 to choose the interpreter
#
# Without a visible CUDA device it says so and runs the same steps on the CPU at smoke sizes, writing under
# a temporary directory, so the committed results are only ever GPU figures. Any torch >= 2.1 should do.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }

cuda=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null) || { echo "gpu.sh: $PY cannot import torch"; exit 1; }
if [ "$cuda" = 1 ]; then
    device=cuda OUT=bench/results/gpu quick=()
else
    echo "================================================================================"
    echo "gpu.sh: NO CUDA DEVICE VISIBLE: running the CPU fallback path at smoke sizes."
    echo "        These are not GPU figures; results go to a temporary directory."
    echo "================================================================================"
    device=cpu OUT=$(mktemp -d -t erasure-gpu-fallback-XXXX) quick=(--quick)
fi
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md
"$PY" - >"$SUMMARY" <<'PYEOF'
import platform, os, torch
print("# bench/gpu.sh\n")
print(f"- Python {platform.python_version()}, torch {torch.__version__} (CUDA build {torch.version.cuda}), {os.cpu_count()} CPU cores")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"- GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 supported: {torch.cuda.is_bf16_supported()}")
else:
    print("- GPU: none visible (CPU fallback path, smoke sizes)")
PYEOF

# Pure-Python packages the code needs besides torch/numpy/safetensors/sklearn/skimage. Wheels for them may be
# carried in bench/wheels (or $ERASURE_WHEELS) and are installed from there, never from the network.
wheels=${ERASURE_WHEELS:-bench/wheels}
missing=()
for module in tqdm pydantic pytest; do
    "$PY" -c "import $module" 2>/dev/null || missing+=("$module")
done
if [ ${#missing[@]} -gt 0 ] && [ -d "$wheels" ]; then
    "$PY" -m pip install -q --no-index --find-links "$wheels" "${missing[@]}" && missing=()
    for module in tqdm pydantic pytest; do "$PY" -c "import $module" 2>/dev/null || missing+=("$module"); done
fi
if printf '%s\n' "${missing[@]}" | grep -qx tqdm; then
    # unlearning/train.py only iterates through tqdm: a pass-through stand-in is enough.
    shim=$(mktemp -d)
    mkdir -p "$shim/tqdm"
    printf 'def tqdm(iterable=None, *args, **kwargs):\n    return iterable\n' >"$shim/tqdm/__init__.py"
    printf 'from tqdm import tqdm\n' >"$shim/tqdm/auto.py"
    export PYTHONPATH="$PYTHONPATH:$shim"
    echo "- tqdm missing: a pass-through stand-in is used" | tee -a "$SUMMARY"
fi
has() { ! printf '%s\n' "${missing[@]}" | grep -qx "$1"; }
has pydantic || echo "- pydantic missing: unlearning.methods cannot import; the unlearning test skips and bench.methods is not run" | tee -a "$SUMMARY"

status=0
echo -e "\n## Tests (CUDA path)\n" >>"$SUMMARY"
if has pytest; then
    tests=(tests/model/test_cuda_path.py)
    has pydantic && tests+=(tests/model/test_gradient_ascent.py)
    # -o addopts= : pyproject's options may name plugins (xdist) that this machine lacks.
    timeout 240 "$PY" -m pytest "${tests[@]}" -q -p no:cacheprovider -o addopts= -rs 2>&1 | tee "$OUT/tests.log" | tail -15
    code=${PIPESTATUS[0]}
    [ "$code" = 0 ] || status=1
    echo "- \`pytest ${tests[*]}\`: exit $code; $(tail -1 "$OUT/tests.log")" >>"$SUMMARY"
    grep -E "SKIPPED" "$OUT/tests.log" | sed 's/^/  - /' >>"$SUMMARY"
else
    echo "- pytest missing: tests NOT run" | tee -a "$SUMMARY"
fi
echo "[$(elapsed)s] tests done"

echo -e "\n## Benchmarks\n" >>"$SUMMARY"
timeout 120 "$PY" -m bench.serving --device "$device" "${quick[@]}" --out "$OUT/serving-$device" 2>&1 | tail -12
code=${PIPESTATUS[0]}; [ "$code" = 0 ] || status=1
echo "- bench.serving: exit $code, see serving-$device.md" >>"$SUMMARY"
[ -f "$OUT/serving-$device.md" ] && sed -n '3,$p' "$OUT/serving-$device.md" >>"$SUMMARY"
echo "[$(elapsed)s] serving done"

if has pydantic; then
    if [ "$device" = cuda ]; then
        methods_args=(--scenarios restoration --seeds 1)
    else  # the fallback only checks that the benchmark runs: one seed, two methods, CI-size models
        methods_args=(--scenarios restoration --seeds 1 --methods finetune,gradient_ascent)
    fi
    timeout 240 "$PY" -m bench.methods --device "$device" "${quick[@]}" "${methods_args[@]}" --out "$OUT" 2>&1 | tail -20
    code=${PIPESTATUS[0]}; [ "$code" = 0 ] || status=1
    echo -e "\n- bench.methods ${methods_args[*]}: exit $code" >>"$SUMMARY"
    md=$(ls -t "$OUT"/methods*.md 2>/dev/null | head -1)
    [ -n "$md" ] && cat "$md" >>"$SUMMARY"
fi
if has pydantic; then
    if [ "$device" = cuda ]; then plateau_args=(); else plateau_args=(--steps 40 --check-every 20 --unlearning-steps 20); fi
    timeout 200 "$PY" -m bench.plateau --device "$device" "${plateau_args[@]}" --out "$OUT/plateau-$device" 2>&1 | tail -12
    code=${PIPESTATUS[0]}; [ "$code" = 0 ] || status=1
    echo -e "\n- bench.plateau ${plateau_args[*]}: exit $code" >>"$SUMMARY"
    [ -f "$OUT/plateau-$device.md" ] && sed -n '3,$p' "$OUT/plateau-$device.md" >>"$SUMMARY"
fi
echo "- total: $(elapsed) s" >>"$SUMMARY"
echo "[$(elapsed)s] gpu.sh done (exit $status); summary: $SUMMARY"
[ "$cuda" = 1 ] || echo "gpu.sh: reminder: NO CUDA was visible; the figures above are a CPU smoke run."
exit $status
