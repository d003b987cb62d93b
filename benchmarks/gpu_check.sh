#!/usr/bin/env bash
# The GPU check in one command, on a machine that has a CUDA torch and nothing of ours (the lent
# GPU machine: no network, no rtstyle, no PyAV). README, GPU section.
#
#   benchmarks/gpu_check.sh OUT_DIR [gpu_check options]   # make gpu-check OUT=OUT_DIR
#   benchmarks/gpu_check.sh --plan [--python-version 3.12 --platform TAG ...]   # make gpu-wheels
#
# 1. installs the wheels carried in .whl/ (--plan lists them) with --no-deps into a
#    folder of their own, beside the preinstalled torch, which is never touched;
# 2. puts this checkout on the path as the rtstyle package without installing it (nothing to
#    build, no setuptools, no network): rtstyle/ plus trainers/, export/ and benchmarks/ as
#    rtstyle.trainers, .export and .benchmarks (pyproject's package-dir map), as symbolic links;
# 3. runs python -m rtstyle.benchmarks.gpu_check --out OUT_DIR, its output also in
#    OUT_DIR/gpu-check.log, stopped (SIGINT, then SIGKILL) if it outlives RTSTYLE_GPU_CHECK_LIMIT
#    seconds; OUT_DIR gets at most six files. The summary is printed last.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
limit="${RTSTYLE_GPU_CHECK_LIMIT:-480}"  # the check budgets 450 s for itself
site="$(mktemp -d "${TMPDIR:-/tmp}/rtstyle-gpu-check.XXXXXX")"

mkdir -p "$site/pkg/rtstyle" "$site/wheels"
for entry in "$repo"/rtstyle/*; do ln -s "$entry" "$site/pkg/rtstyle/$(basename "$entry")"; done
for sub in trainers export benchmarks; do ln -s "$repo/$sub" "$site/pkg/rtstyle/$sub"; done
export PYTHONPATH="$site/pkg:$site/wheels${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# -P: the checkout's own rtstyle/ folder (cwd) must not shadow the mapped package.
run=("$python" -P -m rtstyle.benchmarks.gpu_check)

if [ "${1:-}" = "--plan" ]; then  # needs no torch: it runs where the wheels are downloaded
    shift
    exec "$python" -P -m rtstyle.benchmarks.gpu_wheels "$@"
fi
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: benchmarks/gpu_check.sh OUT_DIR [gpu_check options] | --plan [options]" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
out="$(cd "$1" && pwd)"  # absolute: the check runs from the checkout
shift
log="$out/gpu-check.log"

check() {
    echo "== gpu_check.sh: $(date -u +%FT%TZ), $("$python" --version 2>&1) at $(command -v "$python")"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    shopt -s nullglob
    local wheels=("$repo"/.whl/*.whl)
    if [ ${#wheels[@]} -gt 0 ]; then
        local t0=$SECONDS
        if "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$site/wheels" "${wheels[@]}"; then
            echo "== installed ${#wheels[@]} wheel(s) in $((SECONDS - t0)) s: $(cd "$repo/.whl" && ls ./*.whl | tr '\n' ' ')"
        else
            echo "== wheel install failed: the check goes on without them (it says which steps need them)"
        fi
    else
        echo "== no wheels in .whl/ (see: benchmarks/gpu_check.sh --plan)"
    fi
    cd "$repo" || return 2
    timeout -s INT -k 30 "$limit" "${run[@]}" --out "$out" "$@"
    local rc=$?
    [ $rc -eq 124 ] && echo "== gpu_check.sh: stopped after $limit s; $out keeps the JSON of the steps that finished"
    echo "== gpu_check.sh: exit $rc; files in $out:"
    ls -l "$out"
    return $rc
}

check "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
rm -rf "$site"
exit "$rc"
