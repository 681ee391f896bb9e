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

#: Iteration budget of the quick profile on a CPU. The oracle SNR of the proposed design peaks
#: near iteration 200 (REFERENCE_NOTES.md), so the budget must reach past that for every design.
QUICK_ITERATIONS = 300

# Fit settings of paper 1 (REFERENCE_NOTES: Adam 1e-3, x0.1 every 500 iterations). The schedule
# stays the paper's in every profile; only the iteration budget and the number of clips shrink.
_FIT = {"lr": 1e-3, "lr_step": 500, "lr_gamma": 0.1, "precision": "auto", "mismatched_istft": False,
        "seed": 0, "designs": ("conv", "dilated", "dilated_exp", "dilated_exp_dense")}


def _denoise(datasets, n_clips, iterations, **extra) -> dict:
    return {**_FIT, "datasets": tuple(datasets), "n_clips": n_clips, "iterations": iterations,
            "pesq_mode": "wb", **extra}


_TABLE1 = ("speech", "digits", "piano")
_GAUSS = {"sigma": 0.1}
_ENV = {"snr_low": 5.0, "snr_high": 9.0, "designs": ("conv", "dilated_exp", "dilated_exp_dense")}

PROFILES: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "quick": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "paper": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
    },
    "01_figure1_denoising_example": {
        "smoke": _denoise(("digits",), 1, 3, **_GAUSS),
        "quick": _denoise(("digits",), 1, QUICK_ITERATIONS, **_GAUSS),
        "paper": _denoise(("digits",), 1, 2000, **_GAUSS),
    },
    "02_table1_gaussian_denoising": {
        "smoke": _denoise(_TABLE1, 1, 3, **_GAUSS),
        "quick": _denoise(_TABLE1, 1, QUICK_ITERATIONS, **_GAUSS),
        "paper": _denoise(_TABLE1, 50, 2000, **_GAUSS),
    },
    "03_table2_environmental_denoising": {
        "smoke": _denoise(_TABLE1, 1, 3, **_ENV),
        "quick": _denoise(_TABLE1, 1, QUICK_ITERATIONS, **_ENV),
        "paper": _denoise(_TABLE1, 50, 2000, **_ENV),
    },
    # --- 04/05: inpainting and separation (Tables 3-4) ---
    # --- 06: convergence (Figure 2) ---
    # --- 07/08: paper 2 (weakly informed separation) ---
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
        if isinstance(params[key], tuple) and isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())  # "-p designs conv,dilated"
        elif isinstance(params[key], tuple):
            value = tuple(value)
        params[key] = value
    params["profile"] = profile
    return params
