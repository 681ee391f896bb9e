"""Which fits a grid runs during an audit (``./run_all.sh --audit MINUTES``, :mod:`dap.report.audit`).

An audit re-fits a sample of the reference's fits, each named by what identifies it across machines:
``(dataset, clip id, design)``, not its fit id (a fit id covers the precision class, so on a machine of
another class every id differs). The sample is handed to the notebooks' grids in a JSON file named by
the environment variable :data:`AUDIT_ENV` (a run of a notebook's fit plan in another process sees it
too); without it every fit runs.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

#: Environment variable naming the JSON file of ``[[dataset, clip_id, design], ...]`` to run.
AUDIT_ENV = "DAP_AUDIT_FITS"


@lru_cache(maxsize=4)
def _selection(path: str) -> frozenset:
    return frozenset(tuple(item) for item in json.loads(open(path).read()))


def audited(clip, designs: list[str]) -> list[str]:
    """The designs of ``designs`` to fit on ``clip``: all of them, or during an audit those sampled.

    Args:
        clip: a :class:`dap.data.clip.Clip` (its ``dataset`` and ``id``).
        designs: design (or baseline) names.

    Returns:
        The names to run, in their order.
    """
    path = os.environ.get(AUDIT_ENV)
    if not path:
        return list(designs)
    chosen = _selection(path)
    return [d for d in designs if (clip.dataset, clip.id, d) in chosen]
