#!/usr/bin/env bash
# The peers' own virtual environment, benchmarks/peers/.venv: LanceDB and Chroma are measured
# beside bindsearch, never installed into its environment nor made its dependencies.
# Prints one JSON line, also kept in .venv/install.json for scale.py to report: what the install took
# (seconds, MiB on disk) and the versions it got.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

started=$(date +%s.%N)
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet lancedb chromadb numpy pyarrow >&2
finished=$(date +%s.%N)

mib=$(du -sm "$venv" | cut -f1)
"$venv/bin/python" - "$started" "$finished" "$mib" <<'PY' | tee "$venv/install.json"
import json
import sys
from importlib import metadata

started, finished, mib = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
versions = {name: metadata.version(name) for name in ("lancedb", "chromadb", "numpy", "pyarrow", "pylance")
            if any(d.metadata["Name"].lower() == name for d in metadata.distributions())}
print(json.dumps({"benchmark": "scale", "measure": "peer_install", "install_s": round(finished - started, 1),
                  "venv_mib": mib, "packages": len(list(metadata.distributions())), "versions": versions}))
PY
