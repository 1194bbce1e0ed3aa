#!/usr/bin/env bash
# The GPU paths on a machine with an NVIDIA GPU, in one go, each step time-boxed:
#   1. the smoke scenario in-process on CUDA, then on the CPU (same machine, for comparison);
#   2. the smoke scenario on Ray actors holding a quarter of the GPU each;
#   3. the test suite with `runtime.device: auto` resolving to CUDA (pytest-xdist if present);
#   4. the default scenario (scenarios/mec.yaml) on CUDA.
# Usage: bash benchmarks/gpu_check.sh [WORK_DIR]   (PY picks the interpreter: .venv/bin/python)
# Prints each step's exit code and seconds; run outputs go under WORK_DIR (runs/gpu-check).
set -u
PY=${PY:-.venv/bin/python}
WORK=${1:-runs/gpu-check}
mkdir -p "$WORK"

step() { printf '\n== %s %s\n' "$(date +%T)" "$*"; }
timed() {  # timed SECONDS command...: run it with a deadline; print its exit code and seconds
    local limit=$1 start=$EPOCHREALTIME rc
    shift
    timeout "$limit" "$@"
    rc=$?
    printf -- '-- rc %d in %.1f s%s\n' "$rc" "$(bc_sub "$EPOCHREALTIME" "$start")" \
        "$([ "$rc" = 124 ] && echo " (stopped at its ${limit} s limit)")"
}
bc_sub() { "$PY" -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$1" "$2"; }
run() {  # run NAME SECONDS [--set ...]: one scenario run into WORK/NAME
    local name=$1 limit=$2
    shift 2
    timed "$limit" "$PY" cli.py run "$SCENARIO" --out "$WORK/$name" --set output.plots=false "$@"
}

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc)"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

SCENARIO=scenarios/smoke.yaml
step "smoke, in-process, cuda"
run smoke-cuda 240 --set runtime.device=cuda
step "smoke, in-process, cpu"
run smoke-cpu 240 --set runtime.device=cpu
step "smoke, ray, 0.25 GPU per actor, cuda"
run smoke-ray-gpu 240 --set runtime.backend=ray --set runtime.device=cuda \
    --set runtime.gpus_per_client=0.25 \
    --set "methods=[fedavg, nmoe/fedce/fedgate, nmoe/fedsc/rangate]"

step "test suite, device auto -> cuda"
parallel=()
"$PY" -c "import xdist" 2>/dev/null && parallel=(-n 8 --dist loadfile)
timed "${SUITE_LIMIT_S:-300}" "$PY" -m pytest -q -p no:cacheprovider "${parallel[@]}" tests

SCENARIO=scenarios/mec.yaml
step "mec (the default scenario), in-process, cuda"
run mec-cuda "${MEC_LIMIT_S:-600}" --set runtime.device=cuda
step done
