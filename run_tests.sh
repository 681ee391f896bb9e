#!/usr/bin/env bash
# Run the test suite (unit tests + every notebook in the smoke profile). Extra args go to pytest,
# e.g. ./run_tests.sh -m "not notebooks" or ./run_tests.sh tests/test_audio.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/tools/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -q -ra "$@"
