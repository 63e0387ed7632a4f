#!/usr/bin/env bash
# The GPU checks of docs/speed.md in one command, for a machine with a CUDA GPU and its own
# Python with torch, torchvision, OpenCV, pandas and scikit-image (such as the device machine
# some sessions are lent), but no package index: the few packages it lacks travel as wheels.
#
#   benchmarks/gpu_check.sh wheels    # here, with the package index: fetch them into .whl/
#   benchmarks/gpu_check.sh [PHASES]  # there: PHASES from tests, bench, compile (default:
#                                     # tests bench); logs and JSON go to $OUT (or gpu-check/)
#
# tests:   the CUDA tests (compiled step with Inductor and CUDA graphs against eager; fold-
#          batched and folds on CUDA streams against one by one; MTCNN on CUDA against the
#          CPU), at most 4 minutes;
# bench:   benchmarks/bench_loso.py, paper preset, 50 epochs: (a) on 2 folds x 5 epochs and
#          (b) on 2 folds, extrapolated; (c) spread (4 fold processes share the GPU),
#          fold-batched (4 tasks of 7 stacked folds) and streams (4 tasks of 7 folds, each on a
#          CUDA stream of its own), each a full 26-fold LOSO; at most 8 minutes;
# compile: (b) and the spread path again with TrainConfig.compile=cudagraphs.
# A phase cut short by its time limit keeps what it wrote: the bench writes its JSON after
# every path.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if [ "${1:-}" = "wheels" ]; then
    # Pure-Python packages the library needs beyond that machine's image (the image has
    # torch, torchvision, requests, pillow, OpenCV, pandas, pyarrow, scikit-image, PyYAML).
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    exec "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl \
        facenet-pytorch==2.5.3 openpyxl==3.1.5 et-xmlfile==2.0.0
fi

out="${OUT:-$root/gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
if ls .whl/*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/tsfmicro-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/tsfmicro-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print(torch.__version__, torch.cuda.get_device_name(0))' \
    2>&1 | tee "$out/machine.txt" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv >> "$out/machine.txt" 2>&1

status=0
for phase in ${@:-tests bench}; do
    case "$phase" in
        tests)
            timeout 240 "$python" -m pytest -q -p no:cacheprovider -o addopts="" \
                tests/tsfmicro/training/test_compile.py tests/tsfmicro/training/test_stacked.py tests/tsfmicro/training/test_streams.py \
                tests/tsfmicro/faces/test_faces_detect.py \
                -k "cuda" 2>&1 | tee "$out/tests.log" || status=1
            ;;
        bench)
            timeout 480 "$python" benchmarks/bench_loso.py --preset paper --epochs 50 \
                --device cuda --sample-folds 2 --baseline-epochs 5 --backend processes \
                --json "$out/loso-gpu.json" 2>&1 | tee "$out/bench.log" || status=1
            ;;
        compile)
            timeout 480 "$python" benchmarks/bench_loso.py --preset paper --epochs 50 \
                --device cuda --sample-folds 2 --paths b,c_spread --compile cudagraphs \
                --backend processes --json "$out/loso-gpu-cudagraphs.json" 2>&1 \
                | tee "$out/bench-cudagraphs.log" || status=1
            ;;
        *)
            echo "gpu_check: unknown phase $phase (tests, bench, compile)" >&2
            exit 2
            ;;
    esac
done
exit $status
