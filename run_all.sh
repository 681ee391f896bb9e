#!/usr/bin/env bash
# Regenerate every table and figure under results/ by executing the notebooks with papermill.
#   ./run_all.sh                      quick profile, all notebooks (~1.5 h on 2 idle CPU cores; see README)
#   ./run_all.sh --profile smoke      every notebook in seconds (what CI runs)
#   ./run_all.sh --profile paper      the papers' protocol (use a GPU)
#   ./run_all.sh 02 03                only these notebooks;  -p NAME VALUE overrides a parameter
#   ./run_all.sh --list               list the notebooks
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/tools/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m dap.runner "$@"
