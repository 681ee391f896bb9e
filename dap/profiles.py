"""Profiles: named parameter sets per notebook, defined once here.

``smoke``  every notebook in well under a minute on 2 CPU cores (CI);
``quick``  the default of ``run_all.sh`` on a CPU: every table and figure at reduced scale, the
           scale printed in each caption (sized from the per-iteration costs in README);
``paper``  the papers' protocol (50 clips, 2000 iterations, ...); meant for a GPU.

papermill injects ``profile`` (and any single override) into a notebook's ``parameters`` cell; the
notebook calls :func:`resolve`, so a parameter left at ``None`` takes the profile's value.
"""

from __future__ import annotations

PROFILES_ORDER = ("smoke", "quick", "paper")

# Shared fit settings of paper 1 (REFERENCE_NOTES: Adam 1e-3, x0.1 every 500 iterations).
_FIT_PAPER = {"iterations": 2000, "lr": 1e-3, "lr_step": 500, "lr_gamma": 0.1}

PROFILES: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "quick": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "paper": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
    },
}


def resolve(notebook: str, profile: str, **overrides) -> dict:
    """Parameters of ``notebook`` under ``profile``, with non-``None`` overrides applied.

    Raises KeyError naming the valid notebooks / profiles / parameter names on a typo, so a
    misspelt papermill ``-p`` never silently does nothing.
    """
    if notebook not in PROFILES:
        raise KeyError(f"no profiles for notebook {notebook!r}; known: {sorted(PROFILES)}")
    table = PROFILES[notebook]
    if profile not in table:
        raise KeyError(f"unknown profile {profile!r} for {notebook}; choose one of {PROFILES_ORDER}")
    params = dict(table[profile])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in params:
            raise KeyError(f"{notebook} has no parameter {key!r}; parameters: {sorted(params)}")
        params[key] = value
    params["profile"] = profile
    return params
