"""Typed settings: one frozen dataclass per kind of study (:mod:`dap.config.profiles` gives their values
per notebook and profile). A setting is read one way, as an attribute (``p.iterations``); a name
that does not exist raises naming the valid ones; values are converted to the declared types or
refused with :class:`SettingsTypeError`.
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


class SettingsError(DapError, KeyError):
    """An unknown notebook, profile or setting name (a typo); the message lists the valid names.
    A :class:`KeyError` too: the name is a key of the profiles' tables."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class SettingsTypeError(DapError, TypeError):
    """A setting given a value of the wrong type (``-p iterations ten``), or an attempt to change
    a frozen setting in place."""


def unknown_name(what: str, name, valid) -> str:
    """``what 'name' (did you mean 'x'?); valid: a, b, c`` for an unknown ``name`` among ``valid``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{what} {name!r}{hint}; valid: {', '.join(valid)}"


# ----------------------------------------------------------------------------- typed settings
@dataclass(frozen=True, kw_only=True)
class NotebookSettings:
    """Base of every notebook's settings: frozen and typed, read as attributes.

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

    def replace(self, **changes) -> "NotebookSettings":
        """A copy with ``changes`` applied (converted and checked like overrides; here ``None`` is
        a value, not "keep"). An unknown name raises :class:`SettingsError`."""
        for name in changes:
            if name not in self.names():
                raise SettingsError(unknown_name(f"{type(self).__name__} has no setting", name, self.names()))
        return dataclasses.replace(self, **changes)

    def __getattr__(self, name: str):  # only called for a name that is not a field (nor a method)
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(unknown_name(f"{type(self).__name__} has no setting", name, self.names()))


@dataclass(frozen=True, kw_only=True)
class ClipSettings(NotebookSettings):
    """One clip of a data set (the quickstart and the teaching notebooks)."""

    dataset: str      #: speech | digits | piano | drums (| noise | stems for the explorer)
    clip_index: int   #: which clip of the data set


@dataclass(frozen=True, kw_only=True)
class QuickstartSettings(ClipSettings):
    """00_quickstart: one clip, its noisy version and its STFT."""

    sigma: float  #: Gaussian noise level (the clip peaks at 1)


@dataclass(frozen=True, kw_only=True)
class FitSettings(NotebookSettings):
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
    cluster: str | None = None     #: fits on Dask (dap.engine.cluster): local | local-cuda | slurm | tcp://host:port
    oracle_patience: int | None = None  #: oracle run to its peak: stop this many iterations after its best (None: the budget's best)
    oracle_cap: int | None = None  #: ... but never past this many iterations


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
class WiassSettings(NotebookSettings):
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
    corpus: str                   #: embedded | generated (dap.wiass.corpus), used when source is embedded
    corpus_fragments: int         #: size of the generated corpus to build (split 2000 : 500 : 250)


@dataclass(frozen=True, kw_only=True)
class WiassAttentionSettings(WiassSettings):
    """08_wiass_figure3_attention: 07's settings (its models are reused when equal) plus the figure's."""

    attention_configurations: tuple[str, ...]
    clip_id: str | None           #: test fragment shown (None: the one with most silent seconds)
    compare_unguided: bool


@dataclass(frozen=True, kw_only=True)
class ExplorerSettings(ClipSettings):
    """09_explore_deep_priors: the explorer's first run (dap.explore.Choices.from_params)."""

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
    """10_why_dilation_and_density (dap.explore.teaching): receptive fields, cost, spectral bias."""

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
