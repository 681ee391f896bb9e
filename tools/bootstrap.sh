#!/usr/bin/env bash
# Make .venv hold the pinned stack of pyproject.toml (created or refreshed when pyproject changes),
# and make sure ffmpeg/ffprobe are on PATH (museval's musdb/stempeg dependency checks at import).
# Sourced by run_all.sh and run_tests.sh; prints what it does.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.dap-stamp"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"

if ! command -v "$PY" >/dev/null; then
  echo "bootstrap: $PY not found; install Python >= 3.10 (or set PYTHON=/path/to/python3)" >&2; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the pinned stack into .venv (torch is ~5 GB; a few minutes the first time)"
  t0=$(date +%s)
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  # tinysoundfont (the corpus' renderer) with --no-deps: its pyaudio dependency does not build and is unused
  if ! { "$VENV/bin/python" -m pip install -e "$ROOT[test,corpus]" &&
         "$VENV/bin/python" -m pip install --no-deps tinysoundfont==0.3.7; } >"$VENV/.install.log" 2>&1; then
    tail -n 30 "$VENV/.install.log" >&2
    echo "bootstrap: pip install failed; full log in $VENV/.install.log" >&2; exit 1
  fi
  echo "$want" > "$STAMP"
  echo "bootstrap: installed in $(( $(date +%s) - t0 )) s"
else
  echo "bootstrap: .venv is up to date"
fi

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ffmpeg with apt-get (museval needs ffmpeg and ffprobe at import)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "bootstrap: ffmpeg and ffprobe are needed on PATH (museval checks at import)." >&2
    echo "           Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg; conda: see environment.yml" >&2
    exit 1
  fi
fi

# The soundfont of the generated paper-2 corpus (dap/wiass/corpus.py); only that corpus needs it.
if [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && [ -z "${DAP_SOUNDFONT:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing fluid-soundfont-gm with apt-get (the wiass corpus renders with it)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluid-soundfont-gm >/dev/null
  else
    echo "bootstrap: note: the wiass corpus needs the FluidR3 soundfont: sudo apt-get install fluid-soundfont-gm" >&2
    echo "           (or set DAP_SOUNDFONT to an .sf2 file); everything else works without it" >&2
  fi
fi
