#!/usr/bin/env bash
# Build onnxep_cpp._kernels with AddressSanitizer + UndefinedBehaviorSanitizer into a
# temporary folder and run the C++ provider's tests against that build.
#
#   scripts/sanitize.sh [extra pytest args]
#
# The sanitized module is put first on PYTHONPATH (with copies of the package's .py files),
# so the regular build in providers/onnxep_cpp/ is left alone. Python itself is not
# instrumented, so the ASan runtime is preloaded; leak detection is off (CPython keeps
# objects alive until exit). Any sanitizer report aborts the run with a non-zero status.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/onnxep-sanitize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"

echo "== building the sanitized extension in $WORK"
ONNXEP_CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1" \
ONNXEP_LDFLAGS="-fsanitize=address,undefined" \
  "$PYTHON" setup.py -q build_ext --force --build-lib "$WORK/lib" --build-temp "$WORK/tmp" \
  >"$WORK/build.log" 2>&1 || true
SO=$(find "$WORK/lib" -name '_kernels*.so' | head -n 1)
if [[ -z "$SO" ]]; then
  cat "$WORK/build.log"
  echo "sanitize.sh: the sanitized build failed" >&2
  exit 1
fi

mkdir -p "$WORK/pkg/onnxep_cpp"
cp providers/onnxep_cpp/*.py providers/onnxep_cpp/*.pyi providers/onnxep_cpp/py.typed \
  "$WORK/pkg/onnxep_cpp/"
cp "$SO" "$WORK/pkg/onnxep_cpp/"

# libstdc++ is preloaded too: ASan resolves the real __cxa_throw when it starts, and the
# python binary does not link libstdc++ (without it, the first C++ exception aborts).
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="${SANITIZER_LOG:+log_path=$SANITIZER_LOG:}detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${SANITIZER_LOG:+:log_path=$SANITIZER_LOG}"
export PYTHONDONTWRITEBYTECODE=1

"$PYTHON" - "$WORK" <<'PY'
import sys
import onnxep_cpp._kernels as k
assert k.__file__.startswith(sys.argv[1]), f"not the sanitized build: {k.__file__}"
print(f"== testing {k.__file__} (GEMM path: {k.gemm_isa()})")
PY

"$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT"/tests/providers/test_cpp_*.py "$@"
echo "== sanitizers: clean"
