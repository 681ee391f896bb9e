"""Profiles: the settings of every notebook, one typed class per study, values defined once here.

``smoke``  every notebook at a tiny scale: checks the pipeline, not the papers (CI);
``quick``  the default of ``run_all.sh`` on a CPU: every table and figure at reduced scale, the
           scale printed in each caption (sized from the per-iteration costs in dap/config/costs.py);
``paper``  the papers' protocol (50 clips, 2000 iterations, ...); meant for a GPU.

What a profile costs on a given machine: ``./run_all.sh --plan --profile P`` (measured there, from the
cost table of dap/config/costs.py; docs/costs.md), not a number written here.

What a notebook can be told is a frozen dataclass (:data:`SETTINGS` names the class of each
notebook, :data:`PROFILES` its values under each profile). papermill writes ``profile`` and any
override into the notebook's ``parameters`` cell; the notebook then calls ::

    p = profiles.from_parameters(NAME, globals())

which takes every setting of that notebook bound in its namespace (``None``: the profile's value).
Settings are read as attributes (``p.iterations``). A misspelt name raises at once, naming the
valid ones: an override that silently does nothing cannot happen. ``p.replace(iterations=3)`` is a copy with some settings changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dap.config.schedule import PAPER_SCHEDULE
from dap.config.notebook_settings import (EnvironmentalDenoisingSettings, ExplorerSettings, GaussianDenoisingSettings,
                          InpaintingSettings, QuickstartSettings, SeparationSettings, NotebookSettings, SettingsError,
                          SettingsTypeError, StoppingSettings, TeachingSettings, WiassAttentionSettings,
                          WiassSettings, unknown_name)

PROFILES_ORDER = ("smoke", "quick", "paper")


#: The settings class of each notebook.
SETTINGS: dict[str, type[NotebookSettings]] = {
    "00_quickstart": QuickstartSettings,
    "01_figure1_denoising_example": GaussianDenoisingSettings,
    "02_table1_gaussian_denoising": GaussianDenoisingSettings,
    "03_table2_environmental_denoising": EnvironmentalDenoisingSettings,
    "04_table3_inpainting": InpaintingSettings,
    "05_table4_separation": SeparationSettings,
    "06_figure2_convergence": GaussianDenoisingSettings,
    "07_wiass_figure2_side_information": WiassSettings,
    "08_wiass_figure3_attention": WiassAttentionSettings,
    "09_explore_deep_priors": ExplorerSettings,
    "10_why_dilation_and_density": TeachingSettings,
    "11_blind_stopping": StoppingSettings,
}


#: Iteration budget of the quick profile on a CPU, sized from the per-iteration costs of
#: dap/config/costs.py (results/reference/benchmarks.md; what each notebook then costs on a machine:
#: ``./run_all.sh --plan``). The oracle SNR of the
#: proposed design peaks near iteration 200 with 2000-iteration schedules (docs/method.md, Optimisation): quick
#: stops before every design has peaked, which is why it shows the ranking and not the paper's values.
QUICK_ITERATIONS = 150
#: quick fits 0.512 s of each clip (its most energetic window) so that the main claim of Tables 1-3
#: rests on three clips per data set within a CPU's budget (``./run_all.sh --plan``; the paper's widths
#: are kept). A multiple of 256 samples keeps the spectrogram divisible by the priors' poolings.
QUICK_SAMPLES = 8192
#: Clips per data set in quick's Tables 1-3 and Figures 1-2 (the fewest a paired interval can use).
QUICK_CLIPS = 3

# Fit settings of paper 1. The schedule stays the paper's (dap.config.schedule) in every profile; only the
# iteration budget and the number of clips shrink.
_FIT = {**PAPER_SCHEDULE.settings(), "precision": "auto", "mismatched_istft": False,
        "seed": 0, "designs": ("conv", "dilated", "dilated_exp", "dilated_exp_dense"),
        "workers": 0, "max_samples": None}  # workers 0 = auto: parallel single-threaded fits on a CPU, one fit at a time on a GPU


def _denoise(datasets, n_clips, iterations, **extra) -> dict:
    return {**_FIT, "datasets": tuple(datasets), "n_clips": n_clips, "iterations": iterations,
            "pesq_mode": "wb"} | extra


_TABLE1 = ("speech", "digits", "piano")
_SMOKE = {"workers": 1, "precision": "fp32"}  # a few iterations: workers would cost more than they save
_GAUSS = {"sigma": 0.1}
_QUICK = {"max_samples": QUICK_SAMPLES}
_WIASS_CONFIGS = ("BL1", "BL2", "M1", "M2", "A1", "A2", "A3.1", "A3.2")
_WIASS_READING = {"decay": "decoupled", "mask_padding": True, "output_leak": 0.01}
_ENV = {"snr_low": 5.0, "snr_high": 9.0, "designs": ("conv", "dilated_exp", "dilated_exp_dense")}

#: Every setting of each notebook under each profile (types and meanings: the classes of SETTINGS).
PROFILES: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "quick": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
        "paper": {"dataset": "digits", "clip_index": 0, "sigma": 0.1, "seed": 0},
    },
    # Figure 1 shows Table 1's first digit clip; Figure 1, Table 1 and Figure 2 load the same digit
    # clips with the same settings, so their fits are shared (clip choice depends on n_clips).
    "01_figure1_denoising_example": {
        "smoke": _denoise(("digits",), 1, 2, **_GAUSS, **_SMOKE),
        "quick": _denoise(("digits",), QUICK_CLIPS, QUICK_ITERATIONS, **_GAUSS, **_QUICK),
        "paper": _denoise(("digits",), 1, 2000, **_GAUSS),
    },
    "02_table1_gaussian_denoising": {
        "smoke": _denoise(_TABLE1, 1, 2, **_GAUSS, **_SMOKE),
        "quick": _denoise(_TABLE1, QUICK_CLIPS, QUICK_ITERATIONS, **_GAUSS, **_QUICK),
        "paper": _denoise(_TABLE1, 50, 2000, **_GAUSS),
    },
    "03_table2_environmental_denoising": {
        "smoke": _denoise(("digits",), 1, 2, **_ENV, **_SMOKE),
        "quick": _denoise(_TABLE1, QUICK_CLIPS, QUICK_ITERATIONS, **_ENV, **_QUICK),
        "paper": _denoise(_TABLE1, 50, 2000, **_ENV),
    },
    # --- 04/05: inpainting and separation (Tables 3-4) ---
    # Inpainting: gaps of 0.1-0.25 s (the paper), 1 per second of audio (our choice: the paper gives no
    # count), frames masked when their centre falls in a gap. Separation: one piano + one drum clip per
    # mixture; loss weights and collapse guard of dap.tasks.separate (our choices, stated in the caption).
    # smoke also shrinks the priors (widths 4/8/16, stated in the caption): it only checks that the
    # notebooks run, and three full-width priors per separation fit would cost more than all the rest.
    "04_table3_inpainting": {
        name: {**_FIT, "datasets": ("speech", "digits"), "n_clips": n, "iterations": it, "prior_opts": opts,
               "gaps_per_second": 1.0, "gap_min_s": 0.1, "gap_max_s": 0.25, "frame_rule": "centre",
               "max_samples": QUICK_SAMPLES if name == "quick" else None}
        for name, n, it, opts in (("smoke", 1, 3, {"widths": (4, 8, 16)}), ("quick", QUICK_CLIPS, 120, None),
                                  ("paper", 50, 2000, None))
    },
    # n_clips = mixtures at a 0 dB source-energy ratio; weights and guard mirror
    # dap.tasks.separate.SeparationWeights / CollapseGuard (our choices, stated in the caption). A CPU
    # cannot afford 3 full-width priors x 4 designs x 3 mixtures at a useful budget, so quick fits
    # 0.512 s windows with priors of widths 16/32/64 (stated in the caption); paper keeps the paper's.
    "05_table4_separation": {
        name: {**_FIT, "datasets": ("piano", "drums"), "n_clips": n, "iterations": it, "prior_opts": opts,
               "max_samples": samples, "domain": "magnitude", "ratio_db": 0.0, "time_variation": 0.1,
               "w_mixture": 1.0, "w_smoothness": 1.0, "w_presence": 1.0, "presence_min": 0.3, "w_exclusion": 0.1,
               "exclusion_from": 0.0, "data_norm": "l2",
               "w_binarisation": 0.0, "binarise_from": 0.5, "collapse_db": -15.0, "fitted_db": -3.0,
               "check_from": 0.3, "min_iteration": 20, "max_restarts": 2, "workers": 1 if name == "smoke" else 0}
        for name, n, it, opts, samples in (("smoke", 1, 3, {"widths": (4, 8, 16)}, 4096),
                                           ("quick", 3, 300, {"widths": (16, 32, 64)}, 8192),
                                           ("paper", 50, 2000, None, None))
    },
    # --- 06: convergence (Figure 2) ---
    # Same clips and settings as Table 1's digits, so the four designs' fits are shared with it and
    # only the harmonic prior is fitted anew.
    "06_figure2_convergence": {
        "smoke": _denoise(("digits",), 1, 2, **_GAUSS, **_SMOKE, designs=_FIT["designs"] + ("harmonic",)),
        "quick": _denoise(("digits",), QUICK_CLIPS, QUICK_ITERATIONS, **_GAUSS, **_QUICK,
                          designs=_FIT["designs"] + ("harmonic",)),
        "paper": _denoise(("digits",), 5, 2000, **_GAUSS, designs=_FIT["designs"] + ("harmonic",)),
    },
    # --- 07/08: paper 2 (weakly informed separation) ---
    # Every profile trains with the project's reading of the protocol (_WIASS_READING, docs/wiass.md:
    # decoupled weight decay, padding masked in the attention, leaky output while training).
    # quick and paper train on the generated corpus (dap.wiass.corpus, built on first use; 07 also
    # scores every model on the embedded test stems, side by side): quick on a 330-fragment corpus
    # (240 / 60 / 30; 30 of the valid and 15 of the test fragments: scoring costs ~3 s per fragment and
    # configuration) with one gain-only copy per fragment, paper on the
    # full 2000 / 500 / 250 with the paper's augmentation; paper refuses data smaller than its
    # split sizes (strict_sizes). smoke stays on the embedded stems, remixed (dap.wiass.remix).
    # 07 trains with the paper's attention (no guidance) in every profile: with guided attention at
    # weight 0.01 the term outweighed the L1 loss (~0.002) and the informed models stopped at the
    # silence's validation loss while BL1 / BL2 separated (docs/wiass.md, "Guided attention").
    # Training and data settings are shared: 08 reuses the models 07 trained when they are equal
    # (same settings id), so 08's profiles are 07's plus the figure's own parameters; in smoke and
    # quick 08 also trains the guided twins (guide_weight 0.01, an extra beside the paper's attention).
    # smoke: tiny model, 2 steps, 2 + 1 + 1 fragments. quick: hidden 64 and a fixed budget of 2400
    # steps, chosen from the measured learning curve (docs/wiass.md: SDR ~1 dB at 600 steps, ~8 dB at
    # 2400). paper: section 4 of the paper.
    "07_wiass_figure2_side_information": (_WIASS := {
        "smoke": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 8, "n_layers": 2, "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 1,
                  "epochs": 1, "patience": None, "max_steps": 2, "n_train": 2, "n_valid": 1,
                  "n_test": 1, "copies": 1, "gain_db": 2.0, "pitch": 2, "circular_shift": True,
                  "side_length": 300, "activity_threshold": 0.0, "remix": 4, "gate_eval": True,
                  "strict_sizes": False, **_WIASS_READING, "guide_weight": 0.0,
                  "corpus": "embedded", "corpus_fragments": 6},
        "quick": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 64, "n_layers": 2, "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 8,
                  "epochs": 1000, "patience": None, "max_steps": 2400, "n_train": None,
                  "n_valid": 30, "n_test": 15, "copies": 1, "gain_db": 2.0, "pitch": 0,
                  "circular_shift": False, "side_length": 300, "activity_threshold": 0.0,
                  "remix": 0, "gate_eval": False, "strict_sizes": False, **_WIASS_READING,
                  "guide_weight": 0.0, "corpus": "generated", "corpus_fragments": 330},
        "paper": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 513, "n_layers": 2, "lr": 1e-4, "weight_decay": 1e-3, "batch_size": 128,
                  "epochs": 1000, "patience": 100, "max_steps": None, "n_train": 2000,
                  "n_valid": 500, "n_test": 250, "copies": 4, "gain_db": 2.0, "pitch": 2,
                  "circular_shift": False, "side_length": 300, "activity_threshold": 0.1,
                  "remix": 0, "gate_eval": False, "strict_sizes": True, **_WIASS_READING,
                  "guide_weight": 0.0, "corpus": "generated", "corpus_fragments": 2750},
    }),
    "08_wiass_figure3_attention": {
        name: {**settings, "attention_configurations": ("M2", "A3.1", "A3.2"), "clip_id": None,
               "compare_unguided": True, "guide_weight": 0.0 if name == "paper" else 0.01}
        for name, settings in _WIASS.items()},
    # --- 09/10: teaching notebooks (not tables of the papers) ---
    # 09: the explorer's first run, started by the notebook (its widgets start the next ones). quick is
    # what a student gets in JupyterLab: a 0.512 s digit, sigma 0.1, the exponential-dilation design
    # at laptop widths 16/32/64 (our choice; the paper's are 35/70/140), 200 iterations (its time on a
    # machine: ./run_all.sh --plan 09). smoke: tiny widths, 3 iterations, plus the four-design comparison.
    "09_explore_deep_priors": {
        name: {"dataset": "digits", "clip_index": 0, "seconds": sec, "task": "denoise", "sigma": 0.1,
               "n_gaps": 1, "gap_s": 0.1, "design": design, "widths": widths, "iterations": it,
               "update_every": every, "seed": 0, "precision": precision, "output": "last",
               "autorun": True, "compare": compare}
        for name, sec, design, widths, it, every, precision, compare in (
            ("smoke", 0.512, "dilated_exp", (4, 8, 16), 3, 1, "fp32", True),
            ("quick", 0.512, "dilated_exp", (16, 32, 64), 200, 10, "auto", False),
            ("paper", 1.024, "dilated_exp_dense", (35, 70, 140), 2000, 50, "auto", True))
    },
    # 10: receptive fields (support-network footprints at widths 4/8/16: the support does not depend
    # on widths), cost per iteration at the paper's widths on a 1 s clip (a short measurement), and the
    # spectral-bias fits (clean clip vs white noise) at laptop widths on a 0.512 s clip in quick.
    "10_why_dilation_and_density": {
        name: {"dataset": "digits", "clip_index": 0, "designs": _FIT["designs"], "seed": 0,
               "rf_seconds": rf_s, "footprint_widths": (4, 8, 16), "cost_seconds": cost_s,
               "cost_widths": cost_w, "cost_iterations": cost_it, "bias_design": bias_d,
               "bias_widths": bias_w, "bias_seconds": 0.512, "bias_iterations": bias_it,
               "precision": precision}
        for name, rf_s, cost_s, cost_w, cost_it, bias_d, bias_w, bias_it, precision in (
            ("smoke", 0.256, 0.256, (4, 8, 16), 1, "conv", (4, 8, 16), 2, "fp32"),
            ("quick", 1.024, 1.024, (35, 70, 140), 3, "dilated_exp", (16, 32, 64), 200, "auto"),
            ("paper", 1.024, 1.024, (35, 70, 140), 10, "dilated_exp_dense", (35, 70, 140), 2000, "auto"))
    },
    # --- 11: blind stopping (the discrepancy rule across input SNRs; not a table of the papers) ---
    # One fit per (clip, noise, input SNR): oracle / last / EMA of a fixed budget and the discrepancy
    # rule up to its cap, all from the same fit, with restore's schedule (a constant learning rate up
    # to the cap: lr_step = cap). The noise-estimate errors need no fit and use more clips
    # (n_noise_clips). quick: laptop widths 16/32/64 (stated in the caption), one speech clip of
    # 0.512 s, three input SNRs (the budget of a whole quick run goes to Tables 1-3's clips).
    "11_blind_stopping": {
        name: {**_FIT, "datasets": ("speech",), "n_clips": n, "n_noise_clips": nn, "snrs": snrs,
               "noises": ("white", "environmental"), "designs": ("dilated_exp_dense",), "iterations": it,
               "max_iterations": cap, "lr_step": cap, "tolerance": 1.0, "noise_estimator": "auto",
               "margin_db": 1.0, "prior_opts": opts, "max_samples": samples, **extra}
        for name, n, nn, snrs, it, cap, opts, samples, extra in (
            ("smoke", 1, 1, (5.0, 20.0), 2, 4, {"widths": (4, 8, 16)}, 4096, _SMOKE),
            ("quick", 1, 20, (0.0, 10.0, 20.0), 200, 800, {"widths": (16, 32, 64)}, QUICK_SAMPLES, {}),
            ("paper", 10, 50, (0.0, 5.0, 10.0, 15.0, 20.0), 200, 1500, None, 16384, {}))
    },
}


@dataclass(frozen=True)
class Notebook:
    """A notebook as the registry knows it: its settings class and their values under each profile."""

    name: str
    settings: type[NotebookSettings]
    profiles: dict[str, dict]


def register_notebook(name: str, settings: type[NotebookSettings], values: dict[str, dict],
                      replace: bool = False) -> Notebook:
    """Add a notebook (``notebooks/<name>.ipynb``): its settings class and the values of its settings
    under every profile of :data:`PROFILES_ORDER` (checked here, so a missing or misspelt value fails
    at registration). ``replace``: overwrite a notebook of the same name."""
    if name in SETTINGS and not replace:
        raise SettingsError(f"notebook {name!r} is already registered")
    if set(values) != set(PROFILES_ORDER):
        raise SettingsError(f"{name}: give values for the profiles {', '.join(PROFILES_ORDER)}, got {', '.join(values)}")
    for profile, v in values.items():
        settings(profile=profile, **v)
    SETTINGS[name], PROFILES[name] = settings, values
    return get_notebook(name)


def get_notebook(name: str) -> Notebook:
    """The registered notebook ``name`` (SettingsError naming the known notebooks on a typo)."""
    return Notebook(name, settings_class(name), PROFILES[name])


def settings_class(notebook: str) -> type[NotebookSettings]:
    """The settings class of ``notebook`` (SettingsError naming the known notebooks on a typo)."""
    if notebook not in SETTINGS:
        raise SettingsError(unknown_name("no settings for notebook", notebook, SETTINGS))
    return SETTINGS[notebook]


def resolve(notebook: str, profile: str, **overrides) -> NotebookSettings:
    """The settings of ``notebook`` under ``profile``, with the non-``None`` ``overrides`` applied.

    An unknown notebook, profile or override name raises :class:`SettingsError` at once (naming
    the valid ones and the closest match), ``None`` or not, so a misspelt papermill ``-p`` never
    silently does nothing; a value of the wrong type raises :class:`SettingsTypeError`.
    """
    cls = settings_class(notebook)
    if profile not in PROFILES[notebook]:
        raise SettingsError(unknown_name(f"{notebook}: unknown profile", profile, PROFILES_ORDER))
    unknown = [k for k in overrides if k not in cls.names() or k == "profile"]
    if unknown:
        raise SettingsError(unknown_name(f"{notebook} has no parameter", unknown[0], set(cls.names()) - {"profile"}))
    try:
        settings = cls(profile=profile, **PROFILES[notebook][profile])
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsTypeError as exc:
        raise SettingsTypeError(f"{notebook}: {exc}") from None


def from_parameters(notebook: str, namespace: Mapping) -> NotebookSettings:
    """The settings of ``notebook`` from its parameters: ``namespace`` is the notebook's ``globals()``.

    ``namespace["profile"]`` names the profile; every setting of the notebook's class that is bound
    in ``namespace`` overrides the profile's value unless it is ``None`` (the ``parameters`` cell
    declares the usual ones as ``None``; ``run_all.sh -p NAME VALUE`` can set any setting). So a
    notebook's parameter is spelt once, in its ``parameters`` cell::

        p = profiles.from_parameters(NAME, globals())
    """
    if "profile" not in namespace:
        raise SettingsError(f"{notebook}: the notebook's parameters define no `profile` "
                            f"(one of {', '.join(PROFILES_ORDER)})")
    names = settings_class(notebook).names()
    return resolve(notebook, namespace["profile"],
                   **{k: namespace[k] for k in names if k != "profile" and k in namespace})
