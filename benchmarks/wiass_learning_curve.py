"""Paper 2's learning curve (docs/wiass.md): unguided M2 / A3.1 alignment and M2 - BL2 SDR against
training steps, on notebook 07's settings of a profile (default quick: the generated corpus).

    python benchmarks/wiass_learning_curve.py --out DIR [--profile quick] [--budgets 150 300 ...]

``--table-only`` derives the table from the kept rows alone (``rows.csv`` or ``rows.csv.gz``).
Resumable: a second call with the same DIR scores only the budgets not yet scored (a larger last
budget continues the trainings). Writes ``DIR/rows.csv`` (tidy rows) and ``DIR/curve.md`` (the
table, with the machine and the wall time), and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from dap.config.profiles import resolve
from dap.core.provenance import machine_description
from dap.wiass.learning_curve import CURVE_CONFIGURATIONS, curve_table, learning_curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--budgets", type=int, nargs="+", default=[150, 300, 600, 1200, 2400, 4800])
    ap.add_argument("--configurations", nargs="+", default=list(CURVE_CONFIGURATIONS),
                    help="trained configurations (several processes may share one --out)")
    ap.add_argument("--table-only", action="store_true",
                    help="train nothing: derive curve.md from DIR's rows (rows.csv or rows.csv.gz)")
    args = ap.parse_args()
    p = resolve("07_wiass_figure2_side_information", args.profile)
    start = time.time()
    if args.table_only:
        kept = args.out / "rows.csv"
        rows = pd.read_csv(kept if kept.exists() else args.out / "rows.csv.gz")
    else:
        rows = learning_curve(p, args.budgets, args.out, configurations=args.configurations, progress=False,
                              show=lambda line: print(f"[{time.time() - start:6.0f} s] {line}", flush=True))
    table = curve_table(rows).to_markdown(index=False)
    made = ", ".join(sorted(set(rows["device_name"].astype(str)))) if "device_name" in rows else machine_description()
    text = (f"Learning curve of paper 2: notebook 07's {args.profile} settings with unguided attention, one training "
            f"per configuration scored at every budget (dap/wiass/learning_curve.py); n = test fragments of the "
            f"generated corpus; rows in rows.csv; computed on {made}.\n\n{table}\n")
    (args.out / "curve.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
