"""Profiles: the settings of every notebook, one typed class per study, values defined once here.

``smoke``  every notebook in well under a minute on 2 CPU cores (CI);
``quick``  the default of ``run_all.sh`` on a CPU: every table and figure at reduced scale, the
           scale printed in each caption (sized from the per-iteration costs in README);
``paper``  the papers' protocol (50 clips, 2000 iterations, ...); meant for a GPU.

What a notebook can be told is a frozen dataclass (:data:`SETTINGS` names the class of each
notebook, :data:`PROFILES` its values under each profile). papermill writes ``profile`` and any
override into the notebook's ``parameters`` cell; the notebook then calls ::

    p = profiles.from_parameters(NAME, globals())

which takes every setting of that notebook bound in its namespace (``None``: the profile's value).
Read settings as attributes (``p.iterations``) or, as older code does, as a read-only mapping
(``p["iterations"]``, ``p.get("workers")``, ``"sigma" in p``, ``dict(p)``). A misspelt name
raises at once, naming the valid ones (:class:`SettingsError`): an override that silently does
nothing cannot happen. ``p.replace(iterations=3)`` is a copy with some settings changed.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from dap.core.errors import DapError

PROFILES_ORDER = ("smoke", "quick", "paper")


class SettingsError(DapError, KeyError):
    """An unknown notebook, profile or setting name (a typo); the message lists the valid names.

    A :class:`KeyError` too, so ``p.get(name, default)`` and ``name in p`` work as for a dict."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class SettingsTypeError(DapError, TypeError):
    """A setting given a value of the wrong type (``-p iterations ten``), or an attempt to change
    a frozen setting in place."""


def _unknown(what: str, name, valid) -> str:
    """``what 'name' (did you mean 'x'?); valid: a, b, c`` for an unknown ``name`` among ``valid``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{what} {name!r}{hint}; valid: {', '.join(valid)}"


# ----------------------------------------------------------------------------- typed settings
@dataclass(frozen=True, kw_only=True)
class Settings(Mapping):
    """Base of every notebook's settings: frozen, typed, and a read-only mapping of its fields.

    Values are converted to the declared types where that is lossless and obvious (what papermill
    and ``run_all.sh -p`` pass: ``"conv,dilated"`` or a list for a tuple, ``"3"`` or ``3.0`` for an
    int, an int for a float); anything else raises :class:`SettingsTypeError`.
    """

    profile: str  #: smoke | quick | paper
    seed: int     #: root of every seed the notebook derives (dap.core.seeds)

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for name in self.names():
            value = _convert(type(self).__name__, name, getattr(self, name), hints[name])
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names of this class, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes) -> "Settings":
        """A copy with ``changes`` applied (converted and checked like overrides; here ``None`` is
        a value, not "keep"). An unknown name raises :class:`SettingsError`."""
        for name in changes:
            if name not in self.names():
                raise SettingsError(_unknown(f"{type(self).__name__} has no setting", name, self.names()))
        return dataclasses.replace(self, **changes)

    # --- the read-only mapping interface (dap.wiass and older readers use p["name"], p.get)
    def __getitem__(self, name: str):
        if name in self.names():
            return getattr(self, name)
        raise SettingsError(_unknown(f"{type(self).__name__} has no setting", name, self.names()))

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name) -> bool:
        return name in self.names()

    def __setitem__(self, name, value):
        raise SettingsTypeError(f"{type(self).__name__} is frozen: use p.replace({name}=...) or pass "
                                f"{name}=... to profiles.resolve")

    def __getattr__(self, name: str):  # only called for a name that is not a field (nor a method)
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(_unknown(f"{type(self).__name__} has no setting", name, self.names()))


@dataclass(frozen=True, kw_only=True)
class ClipSettings(Settings):
    """One clip of a data set (the quickstart and the teaching notebooks)."""

    dataset: str      #: speech | digits | piano | drums (| noise | stems for the explorer)
    clip_index: int   #: which clip of the data set


@dataclass(frozen=True, kw_only=True)
class QuickstartSettings(ClipSettings):
    """00_quickstart: one clip, its noisy version and its STFT."""

    sigma: float  #: Gaussian noise level (the clip peaks at 1)


@dataclass(frozen=True, kw_only=True)
class FitSettings(Settings):
    """What every paper-1 study shares: its clips, designs and the fit engine's settings."""

    datasets: tuple[str, ...]
    n_clips: int                   #: clips per data set (separation: mixtures)
    designs: tuple[str, ...]       #: subset of dap.priors.ALL_DESIGNS, in the table's order
    iterations: int                #: fit budget (the paper: 2000)
    lr: float                      #: Adam's learning rate (the paper: 1e-3) ...
    lr_step: int                   #: ... multiplied by lr_gamma every lr_step iterations
    lr_gamma: float
    precision: str                 #: auto (bf16 where native) | fp32 | tf32
    mismatched_istft: bool         #: the authors' 1022-point inverse STFT (docs/method.md)
    workers: int                   #: fits at once; 0 = auto (dap.studies.common.fit_workers)
    max_samples: int | None        #: clips cut to their most energetic window of this length
    prior_opts: dict | None = None  #: build_prior options, e.g. {"widths": (4, 8, 16)}; None = the paper's


@dataclass(frozen=True, kw_only=True)
class DenoisingSettings(FitSettings):
    """Shared by Tables 1-2, Figure 1 and Figure 2 (dap.studies.denoising)."""

    pesq_mode: str  #: wb | nb


@dataclass(frozen=True, kw_only=True)
class GaussianDenoisingSettings(DenoisingSettings):
    """01_figure1_denoising_example, 02_table1_gaussian_denoising, 06_figure2_convergence."""

    sigma: float  #: Gaussian noise level (the paper: 0.1)


@dataclass(frozen=True, kw_only=True)
class EnvironmentalDenoisingSettings(DenoisingSettings):
    """03_table2_environmental_denoising: noise recordings mixed at a random SNR in [low, high]."""

    snr_low: float
    snr_high: float


@dataclass(frozen=True, kw_only=True)
class InpaintingSettings(FitSettings):
    """04_table3_inpainting (dap.studies.inpainting)."""

    gaps_per_second: float  #: gaps per second of audio (our choice: the paper gives no count)
    gap_min_s: float
    gap_max_s: float
    frame_rule: str         #: centre | window: which STFT frames a gap masks


@dataclass(frozen=True, kw_only=True)
class SeparationSettings(FitSettings):
    """05_table4_separation (dap.studies.separation): mixtures, loss weights, collapse guard.

    The weights mirror dap.tasks.separate.SeparationWeights (``w_<term>``, ``presence_min``,
    ``exclusion_from``, ``binarise_from``, ``data_norm``), the guard CollapseGuard."""

    domain: str            #: magnitude (Deep Audio Prior) | complex (paper 1's real+imag)
    ratio_db: float        #: source-energy ratio of the mixtures, piano over drums
    time_variation: float  #: how much the source latents vary along time
    w_mixture: float
    w_smoothness: float
    w_presence: float
    presence_min: float
    w_exclusion: float
    exclusion_from: float
    data_norm: str
    w_binarisation: float
    binarise_from: float
    collapse_db: float
    fitted_db: float
    check_from: float
    min_iteration: int
    max_restarts: int


@dataclass(frozen=True, kw_only=True)
class StoppingSettings(FitSettings):
    """11_blind_stopping (dap.studies.stopping): the discrepancy rule across input SNRs."""

    n_noise_clips: int            #: clips of the noise-estimate table (no fits)
    snrs: tuple[float, ...]       #: input SNRs in dB
    noises: tuple[str, ...]       #: white | environmental
    max_iterations: int           #: the discrepancy rule's cap (iterations = the fixed budget of last / EMA)
    tolerance: float              #: stop when loss <= tolerance x estimated noise floor
    noise_estimator: str          #: auto | white | coloured
    margin_db: float              #: the claim's margin to the oracle


@dataclass(frozen=True, kw_only=True)
class WiassSettings(Settings):
    """07_wiass_figure2_side_information (paper 2, dap.wiass.study): data, model and training."""

    configurations: tuple[str, ...]
    hidden: int                   #: LSTM size per direction (the paper: 513)
    n_layers: int
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    patience: int | None          #: early-stopping patience in epochs (None: none)
    max_steps: int | None         #: cap on optimisation steps
    n_train: int | None           #: fragments per split (None: all)
    n_valid: int | None
    n_test: int | None
    copies: int                   #: augmented copies per training fragment
    gain_db: float
    pitch: int
    circular_shift: bool
    side_length: int
    activity_threshold: float
    remix: int                    #: remixed training examples instead of copies (0: the paper's augmentation)
    gate_eval: bool
    strict_sizes: bool            #: refuse data smaller than the split sizes
    decay: str                    #: decoupled (AdamW) | coupled (Adam's L2)
    mask_padding: bool
    output_leak: float
    guide_weight: float           #: guided-attention weight (0: the paper's attention)


@dataclass(frozen=True, kw_only=True)
class WiassAttentionSettings(WiassSettings):
    """08_wiass_figure3_attention: 07's settings (its models are reused when equal) plus the figure's."""

    attention_configurations: tuple[str, ...]
    clip_id: str | None           #: test fragment shown (None: the one with most silent seconds)
    compare_unguided: bool


@dataclass(frozen=True, kw_only=True)
class ExplorerSettings(ClipSettings):
    """09_explore_deep_priors: the explorer's first run (dap.explore.Settings.from_params)."""

    seconds: float
    task: str                     #: denoise | inpaint
    sigma: float
    n_gaps: int
    gap_s: float
    design: str
    widths: tuple[int, ...]
    iterations: int
    update_every: int             #: redraw every this many iterations
    precision: str
    output: str                   #: last | ema | oracle
    autorun: bool
    compare: bool                 #: also run the four-design comparison


@dataclass(frozen=True, kw_only=True)
class TeachingSettings(ClipSettings):
    """10_why_dilation_and_density (dap.teaching): receptive fields, cost, spectral bias."""

    designs: tuple[str, ...]
    rf_seconds: float
    footprint_widths: tuple[int, ...]
    cost_seconds: float
    cost_widths: tuple[int, ...]
    cost_iterations: int
    bias_design: str
    bias_widths: tuple[int, ...]
    bias_seconds: float
    bias_iterations: int
    precision: str


#: The settings class of each notebook.
SETTINGS: dict[str, type[Settings]] = {
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


_HINTS: dict[type, dict] = {}


def _hints(cls: type) -> dict:
    """The resolved type annotations of ``cls`` (cached; the module uses postponed annotations)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(owner: str, name: str, value, hint):
    """``value`` as the type ``hint`` of setting ``name``, or SettingsTypeError."""
    try:
        return _as(value, hint)
    except (TypeError, ValueError):
        pass
    raise SettingsTypeError(f"{owner}: setting {name!r} must be {_type_name(hint)}, got {value!r}")


def _as(value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in (a for a in args if a is not type(None)):
            try:
                return _as(value, member)
            except (TypeError, ValueError):
                continue
        raise TypeError(value)
    if origin is tuple:  # tuple[X, ...]
        if isinstance(value, str):  # "-p designs conv,dilated"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (tuple, list)):
            raise TypeError(value)
        return tuple(_as(v, args[0]) for v in value)
    if hint is dict:
        if not isinstance(value, Mapping):
            raise TypeError(value)
        return dict(value)
    if hint is bool:
        if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise TypeError(value)
    if isinstance(value, bool):  # True is no number of iterations
        raise TypeError(value)
    if hint is int:
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise TypeError(value)
    if hint is float:
        if isinstance(value, (numbers.Real, str)):
            return float(value)
        raise TypeError(value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    return value


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


# ----------------------------------------------------------------------------- the values of each profile
#: Iteration budget of the quick profile on a CPU, sized from results/benchmarks.md (fast path, 2
#: cores: the four designs together ~3 s per iteration on a 1 s clip; Tables 1-2 and Figure 1 with
#: one 1 s clip per data set took 46 min, measured on an idle machine). The oracle SNR of the
#: proposed design peaks near iteration 200 with 2000-iteration schedules (docs/method.md, Optimisation): quick
#: stops before every design has peaked, which is why it shows the ranking and not the paper's values.
QUICK_ITERATIONS = 150
#: quick fits 1.024 s of each clip (the most energetic window): the 2.048 s speech clips cost twice.
QUICK_SAMPLES = 16384

# Fit settings of paper 1 (docs/method.md, Optimisation: Adam 1e-3, x0.1 every 500 iterations). The schedule
# stays the paper's in every profile; only the iteration budget and the number of clips shrink.
_FIT = {"lr": 1e-3, "lr_step": 500, "lr_gamma": 0.1, "precision": "auto", "mismatched_istft": False,
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
    # Figure 1 = Table 1's first digit clip with the same settings: the fits are shared.
    "01_figure1_denoising_example": {
        "smoke": _denoise(("digits",), 1, 2, **_GAUSS, **_SMOKE),
        "quick": _denoise(("digits",), 1, QUICK_ITERATIONS, **_GAUSS, **_QUICK),
        "paper": _denoise(("digits",), 1, 2000, **_GAUSS),
    },
    "02_table1_gaussian_denoising": {
        "smoke": _denoise(_TABLE1, 1, 2, **_GAUSS, **_SMOKE),
        "quick": _denoise(_TABLE1, 1, QUICK_ITERATIONS, **_GAUSS, **_QUICK),
        "paper": _denoise(_TABLE1, 50, 2000, **_GAUSS),
    },
    "03_table2_environmental_denoising": {
        "smoke": _denoise(("digits",), 1, 2, **_ENV, **_SMOKE),
        "quick": _denoise(_TABLE1, 1, QUICK_ITERATIONS, **_ENV, **_QUICK),
        "paper": _denoise(_TABLE1, 50, 2000, **_ENV),
    },
    # --- 04/05: inpainting and separation (Tables 3-4) ---
    # Inpainting: gaps of 0.1-0.25 s (the paper), 1 per second of audio (our choice: the paper gives no
    # count), frames masked when their centre falls in a gap. Separation: one piano + one drum clip per
    # mixture; loss weights and collapse guard of dap.tasks.separate (our choices, stated in the caption).
    # smoke also shrinks the priors (widths 4/8/16, stated in the caption): it only checks that the
    # notebooks run, and three full-width priors per separation fit would take minutes on 2 cores.
    "04_table3_inpainting": {
        name: {**_FIT, "datasets": ("speech", "digits"), "n_clips": n, "iterations": it, "prior_opts": opts,
               "gaps_per_second": 1.0, "gap_min_s": 0.1, "gap_max_s": 0.25, "frame_rule": "centre",
               "max_samples": QUICK_SAMPLES if name == "quick" else None}
        for name, n, it, opts in (("smoke", 1, 3, {"widths": (4, 8, 16)}), ("quick", 2, 120, None),
                                  ("paper", 50, 2000, None))
    },
    # n_clips = mixtures at a 0 dB source-energy ratio; weights and guard mirror
    # dap.tasks.separate.SeparationWeights / CollapseGuard (our choices, stated in the caption). A CPU
    # cannot afford 3 full-width priors x 4 designs x 3 mixtures at a useful budget, so quick fits
    # 0.512 s windows with priors of widths 16/32/64 (stated in the caption); paper keeps the paper's.
    "05_table4_separation": {
        name: {**_FIT, "datasets": ("piano", "drums"), "n_clips": n, "iterations": it, "prior_opts": opts,
               "max_samples": samples, "domain": "magnitude", "ratio_db": 0.0, "time_variation": 0.1,
               "w_mixture": 1.0, "w_smoothness": 0.5, "w_presence": 1.0, "presence_min": 0.1, "w_exclusion": 0.1,
               "exclusion_from": 0.0, "data_norm": "l1",
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
        "quick": _denoise(("digits",), 1, QUICK_ITERATIONS, **_GAUSS, **_QUICK,
                          designs=_FIT["designs"] + ("harmonic",)),
        "paper": _denoise(("digits",), 5, 2000, **_GAUSS, designs=_FIT["designs"] + ("harmonic",)),
    },
    # --- 07/08: paper 2 (weakly informed separation) ---
    # Every profile trains with the project's reading of the protocol (_WIASS_READING, docs/wiass.md:
    # decoupled weight decay, padding masked in the attention, leaky output while training).
    # quick trains on remixed examples and scores gated test fragments (dap.wiass.remix), with
    # guided attention (a stated deviation; 08 trains its attention models without it too);
    # paper refuses data smaller than its split sizes (strict_sizes).
    # Training and data settings are shared: 08 reuses the models 07 trained when they are equal
    # (same settings id), so 08's profiles are 07's plus the figure's own two parameters.
    # smoke: tiny model, 2 steps, 2 + 1 + 1 fragments (seconds). quick: hidden 64 and a fixed
    # budget sized for 2 CPU cores (see the notebooks' captions). paper: section 4 of the paper.
    "07_wiass_figure2_side_information": (_WIASS := {
        "smoke": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 8, "n_layers": 2, "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 1,
                  "epochs": 1, "patience": None, "max_steps": 2, "n_train": 2, "n_valid": 1,
                  "n_test": 1, "copies": 1, "gain_db": 2.0, "pitch": 2, "circular_shift": True,
                  "side_length": 300, "activity_threshold": 0.0, "remix": 4, "gate_eval": True,
                  "strict_sizes": False, **_WIASS_READING, "guide_weight": 0.01},
        "quick": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 64, "n_layers": 2, "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 8,
                  "epochs": 1000, "patience": None, "max_steps": 600, "n_train": None,
                  "n_valid": None, "n_test": None, "copies": 0, "gain_db": 2.0, "pitch": 0,
                  "circular_shift": False, "side_length": 300, "activity_threshold": 0.0,
                  "remix": 512, "gate_eval": True, "strict_sizes": False, **_WIASS_READING,
                  "guide_weight": 0.01},
        "paper": {"seed": 0, "configurations": _WIASS_CONFIGS,
                  "hidden": 513, "n_layers": 2, "lr": 1e-4, "weight_decay": 1e-3, "batch_size": 128,
                  "epochs": 1000, "patience": 100, "max_steps": None, "n_train": 2000,
                  "n_valid": 500, "n_test": 250, "copies": 4, "gain_db": 2.0, "pitch": 2,
                  "circular_shift": False, "side_length": 300, "activity_threshold": 0.1,
                  "remix": 0, "gate_eval": False, "strict_sizes": True, **_WIASS_READING,
                  "guide_weight": 0.0},
    }),
    "08_wiass_figure3_attention": {
        name: {**settings, "attention_configurations": ("M2", "A3.1", "A3.2"), "clip_id": None,
               "compare_unguided": True}
        for name, settings in _WIASS.items()},
    # --- 09/10: teaching notebooks (not tables of the papers) ---
    # 09: the explorer's first run, started by the notebook (its widgets start the next ones). quick is
    # what a student gets in JupyterLab: a 0.512 s digit, sigma 0.1, the exponential-dilation design
    # at laptop widths 16/32/64 (our choice; the paper's are 35/70/140), 200 iterations: about a
    # minute on 2 CPU cores. smoke: tiny widths, 3 iterations, plus the four-design comparison.
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
    # (n_noise_clips). quick: laptop widths 16/32/64 (stated in the caption), one speech clip.
    "11_blind_stopping": {
        name: {**_FIT, "datasets": ("speech",), "n_clips": n, "n_noise_clips": nn, "snrs": snrs,
               "noises": ("white", "environmental"), "designs": ("dilated_exp_dense",), "iterations": it,
               "max_iterations": cap, "lr_step": cap, "tolerance": 1.0, "noise_estimator": "auto",
               "margin_db": 1.0, "prior_opts": opts, "max_samples": samples, **extra}
        for name, n, nn, snrs, it, cap, opts, samples, extra in (
            ("smoke", 1, 1, (5.0, 20.0), 2, 4, {"widths": (4, 8, 16)}, 4096, _SMOKE),
            ("quick", 1, 20, (0.0, 5.0, 10.0, 15.0, 20.0), 200, 800, {"widths": (16, 32, 64)}, QUICK_SAMPLES, {}),
            ("paper", 10, 50, (0.0, 5.0, 10.0, 15.0, 20.0), 200, 1500, None, QUICK_SAMPLES, {}))
    },
}


def settings_class(notebook: str) -> type[Settings]:
    """The settings class of ``notebook`` (SettingsError naming the known notebooks on a typo)."""
    if notebook not in SETTINGS:
        raise SettingsError(_unknown("no settings for notebook", notebook, SETTINGS))
    return SETTINGS[notebook]


def resolve(notebook: str, profile: str, **overrides) -> Settings:
    """The settings of ``notebook`` under ``profile``, with the non-``None`` ``overrides`` applied.

    An unknown notebook, profile or override name raises :class:`SettingsError` at once (naming
    the valid ones and the closest match), ``None`` or not, so a misspelt papermill ``-p`` never
    silently does nothing; a value of the wrong type raises :class:`SettingsTypeError`.
    """
    cls = settings_class(notebook)
    if profile not in PROFILES[notebook]:
        raise SettingsError(_unknown(f"{notebook}: unknown profile", profile, PROFILES_ORDER))
    unknown = [k for k in overrides if k not in cls.names() or k == "profile"]
    if unknown:
        raise SettingsError(_unknown(f"{notebook} has no parameter", unknown[0], set(cls.names()) - {"profile"}))
    try:
        settings = cls(profile=profile, **PROFILES[notebook][profile])
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsTypeError as exc:
        raise SettingsTypeError(f"{notebook}: {exc}") from None


def from_parameters(notebook: str, namespace: Mapping) -> Settings:
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
