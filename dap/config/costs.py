"""What things cost, kept in one place (no torch import, so the command line can use it before loading
a model): seconds per fit iteration per prior design, the per-notebook cost table that
``./run_all.sh --plan`` scales to this machine (:mod:`dap.config.plan`, docs/costs.md), and the
fits each notebook runs (:func:`fit_groups`).

CPU: seconds per iteration on one 1.024-s window (2 x 512 x 256), one fit at a time on the idle 2-core
reference machine (:data:`REFERENCE_MACHINE`), from ``benchmarks/bench_fit.py``
(results/reference/benchmarks.md; harmonic from the previous run of the same script). GPU: the same
quantity per GPU model, in the precision fits resolve to there (``auto``), pasted from the "For
dap/config/costs.py" section that ``benchmarks/gpu_check.py`` writes; a model without a measurement has
no entry (no GPU has been measured for this repository yet). These tables order a parallel grid's
fits (longest first), give the reference side of the plan's speed ratio and the paper profile's CPU
hours in CLAIMS.md; no result depends on them. Time estimates for *this* machine come from a probe
that measures it (:mod:`dap.tasks.probe`), never from these tables alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dap.config.notebook_settings import FitSettings, NotebookSettings, SeparationSettings, StoppingSettings
from dap.config.profiles import resolve

#: The machine every reference measurement below comes from (unless an entry says otherwise).
REFERENCE_MACHINE = "AMD EPYC (Zen 4 VM), 2 cores, AVX-512 with bf16, no AMX (fits resolve auto to bf16)"
#: Window length (samples at 16 kHz) of the per-iteration tables.
REFERENCE_SAMPLES = 16384

CPU_SECONDS_PER_ITERATION = {"conv": 0.59, "dilated": 0.57, "dilated_exp": 0.58, "dilated_exp_dense": 1.01,
                             "harmonic": 2.92}
#: The same in fp32 (results/reference/benchmarks.md, same run): the reference of the speed ratio of
#: notebooks that compute in fp32 (paper 2).
CPU_FP32_SECONDS_PER_ITERATION = {"conv": 1.199, "dilated": 1.009, "dilated_exp": 0.996, "dilated_exp_dense": 1.934}

#: ``{GPU model as dap.core.device.device_name gives it: {design: seconds per iteration}}``.
GPU_SECONDS_PER_ITERATION: dict[str, dict[str, float]] = {}


def seconds_per_iteration(design: str, gpu_model: str | None = None) -> float | None:
    """Measured seconds per iteration of ``design`` on a 1.024-s window: on the CPU of the table
    (``gpu_model`` None), or on that GPU model; None where nothing was measured."""
    table = CPU_SECONDS_PER_ITERATION if gpu_model is None else GPU_SECONDS_PER_ITERATION.get(gpu_model, {})
    return table.get(design)


#: Native clip length (samples) of each embedded / paper data set; ``max_samples`` may cut it.
CLIP_SAMPLES = {"speech": 32768}
_DEFAULT_CLIP = 16384
#: Priors trained per separation fit (two sources and the masks: dap.tasks.separate).
SEPARATION_PRIORS = 3
#: Clip length of the speed probe (0.512 s: quick's clips); other lengths scale linearly.
PROBE_SAMPLES = 8192


@dataclass(frozen=True)
class ProbeSpec:
    """One fit iteration the probe times (:func:`dap.tasks.probe.time_iteration`): the task's
    network and loss (``denoise``: one prior, the network of denoising, inpainting and the stopping
    study; ``separate``: the three priors of a separation fit), the design, the prior's options
    (``(("widths", (16, 32, 64)),)``; empty: the paper's), the precision and the torch threads (0:
    all, as a fit alone in its process; a grid's worker fit gets its share of the cores)."""

    task: str
    design: str
    options: tuple = ()
    precision: str = "auto"
    domain: str = ""  # separation: magnitude | complex
    threads: int = 0

    def key(self) -> str:
        """A stable text key (the probe cache's)."""
        opts = ",".join(f"{k}={v}" for k, v in self.options) or "paper-widths"
        return (f"{self.task}{'-' + self.domain if self.domain else ''}/{self.design}/{opts}/{self.precision}"
                + (f"/{self.threads}-thread" if self.threads else ""))

    def describe(self) -> str:
        """``dilated_exp (widths 16/32/64, bf16)`` for the plan's lines."""
        widths = dict(self.options).get("widths")
        size = "widths " + "/".join(map(str, widths)) if widths else "paper widths"
        threads = f", {self.threads} thread{'s' if self.threads > 1 else ''}" if self.threads else ""
        return f"{self.design}{' separation' if self.task == 'separate' else ''} ({size}, {self.precision}{threads})"


@dataclass(frozen=True)
class FitGroup:
    """Fits of one notebook that cost the same: ``fits`` fits of ``iterations`` each (the stopping
    study: its cap, an upper bound) on ``samples``-sample clips of ``dataset``, timed by ``spec``.
    Groups of equal ``share_key`` are the same fits (notebooks that share a result store)."""

    spec: ProbeSpec
    dataset: str
    samples: int
    iterations: int
    fits: int
    share_key: str


#: Settings that do not change what a fit computes (left out of the share key).
_NOT_FIT_SETTINGS = {"profile", "datasets", "designs", "workers", "cluster", "pesq_mode", "n_noise_clips", "margin_db"}


def fit_groups(p: NotebookSettings) -> list[FitGroup] | None:
    """The fits the settings ``p`` run, one group per (data set, design); None for notebooks that fit no
    prior (paper 2, the teaching notebooks). Clips are cut to ``max_samples``; a separation fit trains
    three priors on one mixture (one attempt: restarts after a collapse are not counted)."""
    if not isinstance(p, FitSettings):
        return None
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (p.prior_opts or {}).items()))
    separation = isinstance(p, SeparationSettings)
    if separation:
        clips = [("mixture", p.max_samples or _DEFAULT_CLIP)]
        task, domain, per_clip = "separate", p.domain, 1
    else:
        clips = [(d, min(CLIP_SAMPLES.get(d, _DEFAULT_CLIP), p.max_samples or 10 ** 9)) for d in p.datasets]
        task, domain = "denoise", ""
        per_clip = len(p.snrs) * len(p.noises) if isinstance(p, StoppingSettings) else 1
    iterations = max(p.iterations, p.max_iterations) if isinstance(p, StoppingSettings) else p.iterations
    shared = repr(sorted((k, repr(getattr(p, k))) for k in p.names() if k not in _NOT_FIT_SETTINGS))
    return [FitGroup(ProbeSpec(task, design, options, p.precision, domain), dataset, samples, iterations,
                     p.n_clips * per_clip, f"{type(p).__name__}|{dataset}|{design}|{shared}")
            for dataset, samples in clips for design in p.designs]


def study_cost(notebook: str, profile: str) -> dict | None:
    """What ``notebook`` fits under ``profile``, from its settings: ``{"n": clips (mixtures) per data
    set, "fits", "fit_iterations", "cpu_hours"}``; None for notebooks that fit no prior (paper 2, the
    teaching notebooks). ``cpu_hours`` assumes one fit at a time on the 2-core CPU of
    :data:`CPU_SECONDS_PER_ITERATION`, linear in clip length (the costs were measured on 1.024 s);
    None when the priors are not the paper's widths (no measurement) or a design is unmeasured.
    The stopping study's iterations are its cap (an upper bound). Figures 1-2 share Table 1's fits:
    each is costed as if it ran alone."""
    p = resolve(notebook, profile)
    groups = fit_groups(p)
    if groups is None:
        return None
    fits = sum(g.fits for g in groups)
    per = {g.spec.design: seconds_per_iteration(g.spec.design) for g in groups}
    hours = None
    if not p.prior_opts and None not in per.values():
        priors = SEPARATION_PRIORS if isinstance(p, SeparationSettings) else 1
        hours = sum(g.fits * g.iterations * priors * per[g.spec.design] * g.samples / REFERENCE_SAMPLES
                    for g in groups) / 3600
    return {"n": p.n_clips, "fits": fits, "fit_iterations": sum(g.fits * g.iterations for g in groups),
            "cpu_hours": hours}


#: Iterations the discrepancy rule took to reach the estimated noise floor, at an input SNR (dB), with
#: restore's defaults (dilated_exp_dense, paper widths, lr 1e-3 constant, tolerance 1, one 1.024-s
#: window of embedded speech, white noise): results/reference/stopping_benchmark.md
#: (benchmarks/bench_stopping.py). About 3x per 5 dB; from 15 dB the cap of 1500 came first.
DISCREPANCY_STOPS = ((4.98, 258), (10.02, 784))


# ----------------------------------------------------------------------------- per-notebook cost table
#: Kernel start, imports and the rest of a notebook that fits nothing: the whole of 00_quickstart's
#: measured run on the reference machine (results/reference/run_log.csv of commit 10ead34, 2026-11-27). Added to every
#: notebook that fits priors; not scaled (it is mostly Python start-up).
STARTUP_SECONDS = 6.6


@dataclass(frozen=True)
class NotebookCost:
    """One measured run of a notebook (a row of a reference run log) and what the plan takes from it.

    seconds: its wall time. log: where it is recorded, with the run's date and commit. machine: where
    it ran. overrides: its settings that differ from today's ``quick`` profile (``{}``: measured in the
    current profile). fit_seconds (notebooks that fit priors): what its fits cost on that machine,
    predicted from per-iteration costs measured there (``note`` says which); the rest of the wall time
    is the notebook's overhead (scoring, metrics, baselines, figures), see :attr:`overhead`.
    """

    seconds: float
    log: str
    machine: str = REFERENCE_MACHINE
    overrides: dict = field(default_factory=dict)
    fit_seconds: float | None = None
    note: str = ""

    @property
    def current(self) -> bool:
        """Whether the run had the current ``quick`` settings."""
        return not self.overrides

    @property
    def overhead(self) -> float | None:
        """Wall time (less :data:`STARTUP_SECONDS`) over the predicted fit time of the run: the factor
        the plan multiplies this machine's fit time by; None without ``fit_seconds``."""
        return None if not self.fit_seconds else (self.seconds - STARTUP_SECONDS) / self.fit_seconds


# the run logs as committed before the reference was rebuilt under fit ids with code fingerprints
# (git show 10ead34:<path>); later runs of the rebuilt reference are in its run_log.csv
_LOG = "results/reference/run_log.csv of commit 10ead34"
#: The rebuilt reference's run log (docs/reference.md, "Rebuilding the reference from nothing").
_REBUILT = "results/reference/run_log.csv"
#: The previous quick profile (commit 7e86768, run 2026-11-27): one clip per data set cut to 1.024 s.
_OLD_QUICK = {"n_clips": 1, "max_samples": 16384}
_T = CPU_SECONDS_PER_ITERATION
_FOUR = _T["conv"] + _T["dilated"] + _T["dilated_exp"] + _T["dilated_exp_dense"]

#: The per-notebook cost table, seeded from the measured run logs (quick profile, reference machine).
#: Entries with overrides were measured in an older quick profile (their overrides say how it
#: differed); the fits are rescaled to today's settings by the probe, the overhead factor is kept.
#: fit_seconds of the run of 2026-11-27 (commit 7e86768, one notebook after another, idle machine):
#: fits x iterations x :data:`CPU_SECONDS_PER_ITERATION` (1.024-s clips), fits shared with an earlier
#: notebook of the run counted once (01 fits Table 1's digit clips, 02 reuses them, 06 adds only the
#: harmonic prior). tests/test_plan.py recomputes each from the settings.
NOTEBOOK_COSTS: dict[str, NotebookCost] = {
    "00_quickstart": NotebookCost(6.6, f"{_LOG}, 2026-11-27, commit 7e86768", note="fits nothing; settings unchanged since"),
    "01_figure1_denoising_example": NotebookCost(
        508.7, f"{_LOG}, 2026-11-27, commit 7e86768", overrides=_OLD_QUICK, fit_seconds=150 * _FOUR,
        note="older profile: 1 digit clip of 1.024 s (now 3 of 0.512 s)"),
    "02_table1_gaussian_denoising": NotebookCost(
        916.3, f"{_LOG}, 2026-11-27, commit 7e86768", overrides=_OLD_QUICK, fit_seconds=2 * 150 * _FOUR,
        note="older profile: 1 clip of 1.024 s per data set; the digit clip's fits were 01's"),
    "03_table2_environmental_denoising": NotebookCost(
        1328.3, f"{_LOG}, 2026-11-27, commit 7e86768", overrides=_OLD_QUICK,
        fit_seconds=3 * 150 * (_T["conv"] + _T["dilated_exp"] + _T["dilated_exp_dense"]),
        note="older profile: 1 clip of 1.024 s per data set"),
    "04_table3_inpainting": NotebookCost(
        689.6, f"results/reference/run_log.csv of commit a39ddd6, 2026-11-27, commit 7e86768", overrides=_OLD_QUICK,
        fit_seconds=2 * 120 * _FOUR,
        note="older profile: 1 clip of 1.024 s per data set; in the current profile it took 5575.4 s on a "
             "2-core EPYC without AVX-512 (fp32; run_log.csv, 2026-12-02, commit 98567c7), a machine "
             "with no per-iteration costs here"),
    "05_table4_separation": NotebookCost(
        765.1, f"results/reference/run_log.csv of commit d5fed79, 2026-12-02, commit fc52e0c",
        overrides={"w_smoothness": 0.5, "presence_min": 0.1},
        fit_seconds=3 * (182.2 + 88.3 + 108.1 + 98.3) / 2,
        note="current sizes, former loss weights; fit_seconds from the run's own median wall time per fit "
             "(results/reference/table4.md of d5fed79: dense 182.2, conv 88.3, exp 108.1, dilated 98.3 s; "
             "two single-threaded fits at a time); in the current profile it took 6059.3 s on a 2-core EPYC "
             "without AVX-512 (run_log.csv, 2026-12-02, commit a284159)"),
    "06_figure2_convergence": NotebookCost(
        391.8, f"{_LOG}, 2026-11-27, commit 7e86768", overrides=_OLD_QUICK, fit_seconds=150 * _T["harmonic"],
        note="older profile: 1 digit clip of 1.024 s; only the harmonic prior is fitted anew; overhead < 1 "
             "because that run's harmonic fit took 2.55 s/iteration (figure2_convergence.md), the table 2.92"),
    "07_wiass_figure2_side_information": NotebookCost(
        1869.3 + 475 + 426, f"{_REBUILT}, 2026-12-07, commit a404d78",
        note="trains in fp32; the run's 1869.3 s plus the two trainings it loaded from an earlier run of the "
             "same settings (M2 475 s, A3.1 426 s: the training times wiass_figure2_medians.md lists)"),
    "08_wiass_figure3_attention": NotebookCost(
        918.9, f"{_REBUILT}, 2026-12-07, commit 33f6773",
        note="trains in fp32; run after 07, whose models (the paper's attention) it reuses: it trains the guided twins"),
    "09_explore_deep_priors": NotebookCost(35.0, f"{_LOG}, 2026-11-27, commit 7e86768",
                                           note="settings unchanged since"),
    "10_why_dilation_and_density": NotebookCost(60.2, f"{_LOG}, 2026-11-27, commit 7e86768",
                                                note="settings unchanged since"),
    "11_blind_stopping": NotebookCost(
        2384.1, f"{_LOG}, 2026-12-02, commit 1a1fbb1", overrides={"snrs": (0.0, 5.0, 10.0, 15.0, 20.0),
                                                                  "max_samples": 16384},
        note="older profile: five input SNRs, 1.024 s; no per-iteration cost was measured at widths "
             "16/32/64, so no overhead: the plan uses the median of the others"),
}


def default_overhead() -> float:
    """The overhead factor of a notebook whose run has none: the median of the table's."""
    factors = sorted(c.overhead for c in NOTEBOOK_COSTS.values() if c.overhead is not None)
    mid = len(factors) // 2
    return factors[mid] if len(factors) % 2 else (factors[mid - 1] + factors[mid]) / 2


def measured_settings(notebook: str) -> NotebookSettings | None:
    """The settings of the logged run of ``notebook`` (today's quick with its overrides); None when
    the table has no run of it."""
    cost = NOTEBOOK_COSTS.get(notebook)
    return None if cost is None else resolve(notebook, "quick", **cost.overrides)
