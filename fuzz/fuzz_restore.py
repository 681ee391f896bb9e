"""Coverage-guided fuzzing (atheris) of the audio loading + restore entry point (fuzz/target.py).

Every exception other than :class:`dap.core.errors.DapError`, a hang (``-timeout``) or a memory blow-up
(``-rss_limit_mb``) is a finding, saved under ``fuzz/crashes/``. Not part of CI. Run it with one
process, niced (the CPU is shared)::

    nice -n 19 .venv/bin/python fuzz/fuzz_restore.py -max_total_time=600

See fuzz/README.md for what it found.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["dap", "target"]):
    import target


def main() -> None:
    here = Path(__file__).resolve().parent
    corpus = here / "corpus"
    target.seed_corpus(corpus)
    crashes = here / "crashes"
    crashes.mkdir(exist_ok=True)
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))
    defaults = {"-artifact_prefix=": f"{crashes}/", "-max_len=": "65536", "-timeout=": "60",
                "-rss_limit_mb=": "3072"}
    for flag, value in defaults.items():
        if not any(a.startswith(flag) for a in args):
            args.insert(1, flag + value)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    atheris.Setup(args, target.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
