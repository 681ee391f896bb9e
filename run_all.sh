#!/usr/bin/env bash
# Regenerate every table and figure under results/ by executing the notebooks with papermill.
#   ./run_all.sh                      quick profile, all notebooks (prints its plan first, then each real time)
#   ./run_all.sh --plan [--profile P] predicted minutes per notebook on THIS machine, runs nothing
#                                     (a short probe, cached; costs: dap/config/costs.py, docs/costs.md)
#   ./run_all.sh --profile smoke      every notebook at a tiny scale (what CI runs)
#   ./run_all.sh --profile paper      the papers' protocol (use a GPU)
#   ./run_all.sh 02 03                only these notebooks;  -p NAME VALUE overrides a parameter
#   ./run_all.sh --list               list the notebooks
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/tools/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m dap.runner "$@"
