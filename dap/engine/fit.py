"""The optimisation engine shared by every deep-prior task (denoise, inpaint, separate, ...).

(One module on purpose, at ~420 lines: the loop, the selection rules it keeps and the deferred
read-back that feeds them share one state; split, each part would only make sense with the others.)

A task hands the engine a *generator* (an ``nn.Module`` whose ``forward()`` takes no argument:
it holds its fixed latent input(s) and returns the predicted spectrogram(s)), a loss on that
prediction, a decoder to waveforms, and optionally a tracker that scores waveforms against the
clean reference. The engine runs Adam with the paper's step schedule and keeps, in the same run,
the outputs of every *selection rule*:

``oracle``  the iterate with the best tracked score against the clean reference: the authors'
            protocol (early stopping that needs the answer; not available on real data); with
            ``FitConfig.oracle_patience`` the fit goes on past the budget, up to
            ``max_iterations``, until the score has not improved for that many iterations (the
            curve's peak, not the budget's best);
``last``    the final iterate (blind);
``ema``     an exponential moving average of the decoded outputs (blind);
``discrepancy``  the first iterate whose loss has fallen to ``tolerance x noise_floor`` (blind:
            Morozov's discrepancy principle). The task passes ``noise_floor``, the loss a perfect
            fit would have (for denoising, the estimated noise power per STFT entry,
            :mod:`dap.noise`). When the budget ends before the floor is reached the fit goes on up
            to ``FitConfig.max_iterations``; ``last`` and ``ema`` stay those of the budget.

Per-iteration history (loss, learning rate, tracked metrics of the current and EMA output) is
kept for convergence plots. The host's bookkeeping (the loss checks, the scores, the oracle) reads
each iteration back in order; on CUDA up to ``FitConfig.read_back_every`` iterations late (32),
from copies started without waiting, so the GPU never waits for the host; the result is the
same for every value (tests/test_fit_read_back.py). A NaN or exploding loss stops the fit: the result is marked failed
with its reason and what was computed so far is returned, never raised to the grid.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from dap.config.schedule import PAPER_ITERATIONS, PAPER_SCHEDULE
from dap.core.device import native_bf16, precision_mode, resolve_precision
from dap.core.errors import DapError, FitDiverged
from dap.engine.read_back import Queued
from dap.priors.unet import native_dilated_convs


class FitSettingError(DapError, ValueError):
    """Settings of a fit that cannot work (a non-positive noise floor, tolerance or cap)."""

SELECTIONS = ("oracle", "last", "ema", "discrepancy")
SELECTION_NOTES = {
    "oracle": "oracle early stopping: the iterate with the best SNR against the clean reference (the authors' protocol)",
    "last": "blind: the last iterate",
    "ema": "blind: exponential moving average of the outputs",
    "discrepancy": "blind: discrepancy principle, the first iterate whose loss falls to the noise floor "
                   "estimated from the noisy input (x tolerance; docs/stopping.md)",
}


@dataclass
class FitConfig:
    """Settings of one fit. Defaults are the paper's (:mod:`dap.config.schedule`); the tasks take a
    config explicitly, so a caller never gets a 2000-iteration fit by leaving it out."""

    iterations: int = PAPER_ITERATIONS
    lr: float = PAPER_SCHEDULE.lr
    lr_step: int = PAPER_SCHEDULE.lr_step  # x lr_gamma every lr_step iterations
    lr_gamma: float = PAPER_SCHEDULE.lr_gamma
    precision: str = "auto"      # "auto": bf16 autocast where native, else fp32; "fp32" (TF32 off), "tf32" (CUDA), "bf16" (channels_last either way, where safe)
    ema_decay: float = 0.99
    track_every: int = 1          # score the outputs every k iterations (oracle granularity)
    divergence_factor: float = 1e3  # loss above factor x the first loss counts as exploding
    progress: bool = True
    device: str | None = None     # None: cuda when available, else cpu
    clip: float | None = 1.0      # decoded waveforms clipped to [-clip, clip] (the authors' [-1, 1]); None: not clipped
    # discrepancy rule (used when fit() gets a noise_floor): output at the first iterate with
    # loss <= discrepancy_tolerance x noise_floor; past `iterations`, go on up to max_iterations
    # (None: no further) while the floor is not reached; stop_at_discrepancy ends the fit there
    # (restore: no other rule is wanted, the remaining iterations would be wasted).
    discrepancy_tolerance: float = 1.0
    max_iterations: int | None = None
    stop_at_discrepancy: bool = False
    # oracle rule run to its peak (with a tracker): past `iterations`, go on up to max_iterations
    # until the tracked score has not improved for this many iterations (None: the oracle is the
    # best iterate of the budget). The blind rules stay those of the budget.
    oracle_patience: int | None = None
    # how many iterations the device may run ahead of the host's bookkeeping (loss checks, scores,
    # oracle): None = 1 on a CPU (nothing to overlap), 32 on CUDA (no host sync per iteration).
    # The results are the same for every value; a diverged loss is noticed up to this late.
    read_back_every: int | None = None
    # CUDA: deterministic algorithms (same rows when a fit is repeated or resumed); False: cuDNN's
    # fastest, for speed measurements (dap.core.device.precision_mode). No effect on a CPU.
    deterministic: bool = True

    def resolved_device(self) -> torch.device:
        return torch.device(self.device) if self.device else pick_device()

    def resolved_precision(self, device: torch.device) -> str:
        """What the fit runs in on ``device``: ``bf16``, ``fp32`` or ``tf32`` (dap.core.device.resolve_precision)."""
        return resolve_precision(self.precision, device)

    def read_back_lag(self, device: torch.device) -> int:
        """Iterations read back at once at most (1 with stop_at_discrepancy: its stop is at once)."""
        if self.read_back_every is not None and int(self.read_back_every) < 1:
            raise FitSettingError(f"read_back_every must be at least 1 (or None), got {self.read_back_every!r}")
        if self.stop_at_discrepancy:
            return 1
        if self.read_back_every is not None:
            return int(self.read_back_every)
        return 32 if device.type == "cuda" else 1

    def iteration_cap(self, with_floor: bool, with_oracle: bool = False) -> int:
        """The most iterations a fit may run: ``max_iterations`` (when larger) for a discrepancy fit
        or an oracle fit with ``oracle_patience``."""
        extends = with_floor or (with_oracle and self.oracle_patience is not None)
        if extends and self.max_iterations is not None:
            return max(int(self.iterations), int(self.max_iterations))
        return int(self.iterations)


@dataclass
class FitResult:
    """What a fit returns.

    outputs: selection rule -> waveforms ``(S, L)`` float32 (S = 1 for denoising and inpainting).
    best_iteration: selection rule -> the iteration its output comes from (EMA: the last).
    extra: for a discrepancy fit ``noise_floor``, ``discrepancy_tolerance`` and
    ``discrepancy_reached`` (False: the cap came first, the output is the iterate at the cap).
    history: one row per tracked iteration: ``iteration, loss, lr`` and the tracked metrics of the
    current output (``snr``, ...) and of the EMA output (``ema_snr``, ...).
    """

    outputs: dict[str, np.ndarray]
    best_iteration: dict[str, int]
    history: pd.DataFrame
    seconds: float
    iterations: int
    device: str
    precision: str
    status: str = "ok"
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else CUDA when available, else CPU: chosen at run time, never
    hard-coded."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast is worth it where bf16 is native: CUDA compute capability >= 8.0 (not emulated,
    as ``torch.cuda.is_bf16_supported()`` would accept on a T4) and CPUs with AMX / AVX512-BF16."""
    return native_bf16(device)


def channels_last_safe(module: nn.Module, device: torch.device) -> bool:
    """Whether bf16 + channels_last may be used: anywhere but on a CPU with native dilated convs
    (the bug and its work-around: docs/method.md, CPU fast path)."""
    return device.type != "cpu" or not native_dilated_convs(module)


def to_fast_layout(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in channels_last where that is safe (``channels_last_safe``), else unchanged.

    channels_last lets oneDNN (CPU) and cuDNN pick their fast conv kernels in fp32 and bf16 alike
    (measured costs: dap/config/costs.py, results/reference/benchmarks.md; why: docs/method.md, CPU fast
    path); the values are the same up to float rounding.
    """
    return module.to(memory_format=torch.channels_last) if channels_last_safe(module, device) else module


class _Bookkeeping:
    """The host's bookkeeping of one fit, iteration by iteration in order: divergence, the
    discrepancy rule, the last iterate, tracked scores and the oracle, the history, the progress bar
    and the live callback. ``outputs`` / ``best_iter`` hold each rule's output ``(S, L)`` and
    iteration so far; ``it`` and ``last_wav`` the last iteration read back."""

    def __init__(self, config: FitConfig, budget: int, cap: int, threshold: float | None, track, select_key: str,
                 on_step, bar):
        self.config, self.budget, self.cap, self.threshold = config, budget, cap, threshold
        self.track, self.select_key, self.on_step, self.bar = track, select_key, on_step, bar
        self.history: list[dict] = []
        self.outputs: dict[str, np.ndarray] = {}
        self.best_iter: dict[str, int] = {}
        self.best_score = -math.inf
        self.first_loss: float | None = None
        self.it = 0                # the last iteration read back
        self.last_wav = None       # its waveforms (S, L), on the host
        self.reached = False

    def read_back(self, q: Queued) -> bool:
        """Account for one iteration; True when the fit ends at this iteration."""
        q.wait()
        loss_value = float(q.loss)
        if self.first_loss is None:
            self.first_loss = max(loss_value, 1e-12)
        if not math.isfinite(loss_value):
            raise FitDiverged(f"loss is {loss_value} (not finite) at iteration {q.it}")
        if loss_value > self.config.divergence_factor * self.first_loss:
            raise FitDiverged(f"loss exploded to {loss_value:.3g} (first loss {self.first_loss:.3g}) at iteration {q.it}")
        self.it, current = q.it, q.wav.numpy()
        self.last_wav = current
        if self.threshold is not None and not self.reached and loss_value <= self.threshold:
            # loss_value is the loss of the prediction `current` was decoded from
            self.reached = True
            self.outputs["discrepancy"], self.best_iter["discrepancy"] = current, self.it
        if self.it == self.budget:
            self.outputs["last"], self.best_iter["last"] = current, self.it
        it = self.it
        if it % self.config.track_every == 0 or it in (self.budget, self.cap) or (
                self.reached and self.best_iter.get("discrepancy") == it):
            row = {"iteration": self.it, "loss": loss_value, "lr": q.lr}
            if self.track is not None:
                scores = self.track(current)
                row.update(scores)
                row.update({f"ema_{k}": v for k, v in self.track(q.ema.numpy()).items()})  # EMA: of the budget
                score = scores[self.select_key]
                if score > self.best_score:  # NaN never wins
                    self.best_score = score
                    self.outputs["oracle"], self.best_iter["oracle"] = current, self.it
            self.history.append(row)
            if self.bar is not None:
                self.bar.set_postfix({"loss": f"{loss_value:.2e}", **({self.select_key: f"{row[self.select_key]:.2f}"} if self.track else {})},
                                     refresh=False)
            if self.on_step is not None:
                self.on_step(self.it, {**row, "waveforms": current})
        if self.bar is not None:
            self.bar.update(1)
        return self.settled()

    def settled(self) -> bool:
        """Whether every rule has its output: past the budget, only the discrepancy rule (until the
        floor) and the oracle with ``oracle_patience`` (until its score stopped improving) wait."""
        if self.reached and self.config.stop_at_discrepancy:
            return True
        patience = self.config.oracle_patience if self.track is not None else None
        if self.threshold is None and patience is None:
            return False  # nothing extends the fit: it ends at the budget, the loop's end
        floor_done = self.threshold is None or self.reached
        peak_done = patience is None or self.it - self.best_iter.get("oracle", 0) >= patience
        return self.it >= self.budget and floor_done and peak_done


def fit(generator: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor],
        decode: Callable[[torch.Tensor], torch.Tensor], config: FitConfig,
        track: Callable[[np.ndarray], dict[str, float]] | None = None, select_key: str = "snr",
        on_step: Callable[[int, dict], None] | None = None, stop: Callable[[], bool] | None = None,
        noise_floor: float | None = None) -> FitResult:
    """Optimise ``generator``'s parameters and keep the output of every selection rule.

    generator: ``forward() -> prediction`` (any tensor or tuple the task understands);
    loss_fn(prediction) -> scalar; decode(prediction) -> waveforms ``(S, L)`` (clipped to
    ``[-config.clip, config.clip]`` here, [-1, 1] by default as the authors did); track(waveforms numpy (S, L)) -> metrics dict used for the
    oracle rule (``select_key``, higher is better) and the history; without ``track`` there is no
    oracle output. ``on_step(iteration, info)`` is called at every tracked iteration (live plots);
    ``stop()`` returning True ends the fit early (a Stop button), keeping what was computed.
    noise_floor: the loss of a perfect fit (e.g. the noise power per STFT entry), which enables the
    ``discrepancy`` rule (see the module docstring; it never looks at ``track``).
    """
    if noise_floor is not None and not (math.isfinite(noise_floor) and noise_floor > 0):
        raise FitSettingError(f"noise_floor must be a positive finite loss value, got {noise_floor!r}")
    if not (math.isfinite(config.discrepancy_tolerance) and config.discrepancy_tolerance > 0):
        raise FitSettingError(f"discrepancy_tolerance must be positive, got {config.discrepancy_tolerance!r}")
    if config.max_iterations is not None and int(config.max_iterations) < 1:
        raise FitSettingError(f"max_iterations must be at least 1 (or None), got {config.max_iterations!r}")
    budget = int(config.iterations)
    if config.oracle_patience is not None and int(config.oracle_patience) < 1:
        raise FitSettingError(f"oracle_patience must be at least 1 (or None), got {config.oracle_patience!r}")
    cap = config.iteration_cap(noise_floor is not None, track is not None)
    threshold = None if noise_floor is None else config.discrepancy_tolerance * noise_floor
    device = config.resolved_device()
    precision = config.resolved_precision(device)
    generator = to_fast_layout(generator.to(device), device)
    params = [p for p in generator.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else torch.autocast(device.type, enabled=False))

    ema: torch.Tensor | None = None
    status, error = "ok", ""
    bar = _progress(config, cap)
    book = _Bookkeeping(config, budget, cap, threshold, track, select_key, on_step, bar)
    lag = config.read_back_lag(device)
    pending: deque[Queued] = deque()  # iterations computed on the device, not yet read back
    tf32 = precision_mode(precision, device, config.deterministic)  # TF32 explicit: the recorded precision ran
    tf32.__enter__()
    start = time.perf_counter()
    ema_at_budget: torch.Tensor | None = None
    extension_error = ""

    def drain(everything: bool = False) -> bool:
        """Read back the iterations that are due (all with ``everything``); True when the fit ended."""
        while pending and (everything or len(pending) >= lag or pending[0].ready()):
            if book.read_back(pending.popleft()):
                pending.clear()  # computed past the end: never looked at
                return True
        return False

    try:
        ended = False
        for step in range(1, cap + 1):
            opt.zero_grad(set_to_none=True)
            with autocast:
                pred = generator()
            loss = loss_fn(_to_float(pred))
            lr = opt.param_groups[0]["lr"]
            with torch.no_grad():
                wav = decode(_detach(_to_float(pred)))
                if config.clip is not None:
                    wav = wav.clamp(-config.clip, config.clip)
                if step <= budget:  # the blind rules of the budget; the extension is the discrepancy's
                    ema = wav.clone() if ema is None else ema.mul_(config.ema_decay).add_(wav, alpha=1 - config.ema_decay)
            if step == budget:
                ema_at_budget = ema.clone()
            pending.append(Queued.of(step, lr, loss, wav, ema if track is not None else None, device, lag))
            ended = drain()  # with lag 1 (CPU): before the step, so a diverged loss is never stepped on
            loss.backward()
            opt.step()
            sched.step()
            if ended or (stop is not None and stop()):
                break
        if not ended:
            drain(everything=True)
        if "last" not in book.outputs:  # ended before the budget (stop(), stop_at_discrepancy)
            book.outputs["last"], book.best_iter["last"] = book.last_wav, book.it
            ema_at_budget = ema
        if threshold is not None and not book.reached:  # the cap came first: its iterate, flagged
            book.outputs["discrepancy"], book.best_iter["discrepancy"] = book.last_wav, book.it
    except FitDiverged as exc:
        if threshold is not None and "last" in book.outputs and book.it >= budget:
            # diverged in the extension: the budget's rules stand; the discrepancy output is the
            # last finite iterate, flagged as not reached
            book.outputs["discrepancy"], book.best_iter["discrepancy"] = book.last_wav, book.it
            extension_error = str(exc)
        else:
            status, error = "failed", str(exc)
    finally:
        tf32.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    if ema is not None and status == "ok":
        book.outputs["ema"], book.best_iter["ema"] = ema_at_budget.cpu().numpy(), book.best_iter["last"]
    extra = {}
    if threshold is not None:
        extra = {"noise_floor": float(noise_floor), "discrepancy_tolerance": float(config.discrepancy_tolerance),
                 "discrepancy_reached": bool(book.reached)}
        if extension_error:
            extra["discrepancy_error"] = extension_error
    if config.oracle_patience is not None and "oracle" in book.best_iter:
        # False: the cap came first, the oracle curve may still have been rising
        extra["oracle_peaked"] = book.it - book.best_iter["oracle"] >= int(config.oracle_patience)
    return FitResult(outputs=book.outputs, best_iteration=book.best_iter, history=pd.DataFrame(book.history),
                     seconds=time.perf_counter() - start, iterations=book.it, device=str(device),
                     precision=precision, status=status, error=error, extra=extra)


class LatentPrior(nn.Module):
    """A prior network with its fixed latent input: ``forward() = prior(z)``.

    z ~ N(0, 1) of ``shape`` (e.g. (1, 2, 512, 256)), drawn once from ``seed`` and never
    re-perturbed (unlike Deep Image Prior), stored as a buffer so it follows ``.to(device)``.
    """

    def __init__(self, prior: nn.Module, shape: tuple[int, ...], seed: int):
        super().__init__()
        self.prior = prior
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("z", torch.randn(shape, generator=g))

    def forward(self) -> torch.Tensor:
        """The prior applied to its fixed latent.

        Returns:
            The prior's output for ``z``, e.g. a spectrogram ``(1, 2, F, T)``.
        """
        return self.prior(self.z)  # Module.to(memory_format=...) converts z along with the weights


def _to_float(pred):
    if isinstance(pred, (tuple, list)):
        return type(pred)(_to_float(p) for p in pred)
    return pred.float()


def _detach(pred):
    if isinstance(pred, (tuple, list)):
        return type(pred)(_detach(p) for p in pred)
    return pred.detach()


def _progress(config: FitConfig, total: int):
    if not config.progress or os.environ.get("DAP_PROGRESS") == "off":
        return None
    if os.environ.get("DAP_PROGRESS") == "text":  # run_all.sh: plain text lines that land in the logs
        from tqdm.std import tqdm

        return tqdm(total=total, desc="fit", unit="it", mininterval=30.0, file=sys.stderr)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fit", unit="it", mininterval=2.0, leave=False)
