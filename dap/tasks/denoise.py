"""Denoising (paper 1, section 4.1; Tables 1-2, Figures 1-2).

Corruptions: additive Gaussian noise (sigma 0.1, drawn once per clip from the seed) and
environmental noise (a recording mixed in at an SNR drawn from 5-9 dB). Loss: MSE between the
prior's output and the noisy complex STFT. The fit itself is :func:`dap.engine.fit.fit`; it gets the
noise floor of the ``discrepancy`` rule from a blind estimate of the observation (:mod:`dap.noise`).
"""

from __future__ import annotations

import numpy as np
import torch

from dap import metrics
from dap.core.audio import check_audio, istft, stft
from dap.engine.fit import FitConfig, FitResult, LatentPrior, fit
from dap.noise import NoiseEstimate, estimate_noise, true_loss_floor
from dap.priors import build_prior
from dap.core.seeds import stream
from dap.tasks.registry import Observation, Task, register_task


def add_gaussian_noise(clean: np.ndarray, sigma: float = 0.1, seed: int = 0) -> np.ndarray:
    """``clean + sigma * n`` with ``n ~ N(0, 1)`` drawn from ``seed``; ``(L,)`` -> ``(L,)``."""
    clean = check_audio(clean, "clean clip")
    n = np.random.default_rng(seed).standard_normal(clean.shape[0])
    return (clean + sigma * n).astype(np.float32)


def draw_snr_db(seed: int, low: float = 5.0, high: float = 9.0) -> float:
    """The mixing SNR of one clip, uniform in ``[low, high]`` dB (the paper: 5-9 dB)."""
    return float(stream(seed, 1).uniform(low, high))


def add_environmental_noise(clean: np.ndarray, noise: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Mix a random excerpt of the ``noise`` recording into ``clean`` at ``snr_db``.

    clean: ``(L,)``; noise: ``(M,)`` (looped when shorter than L). The excerpt's start is drawn from
    ``seed``. Returns ``(L,)`` with ``10 log10(sum clean^2 / sum scaled_noise^2) == snr_db``.
    """
    clean = check_audio(clean, "clean clip")
    noise = check_audio(noise, "noise recording")
    length = clean.shape[0]
    if noise.shape[0] < length:
        noise = np.tile(noise, -(-length // noise.shape[0]))
    start = int(stream(seed, 2).integers(0, noise.shape[0] - length + 1))
    excerpt = noise[start:start + length].astype(np.float64)
    if not np.any(excerpt):
        raise ValueError(f"the noise excerpt at sample {start} is silent; cannot mix at {snr_db} dB")
    gain = np.sqrt(np.sum(clean.astype(np.float64) ** 2) / (np.sum(excerpt ** 2) * 10 ** (snr_db / 10)))
    return (clean + gain * excerpt).astype(np.float32)


def restore(noisy: np.ndarray, design: str, config: FitConfig,
            seed: int = 0, clean: np.ndarray | None = None, mismatched_istft: bool = False,
            prior_opts: dict | None = None, noise: str | NoiseEstimate | None = "auto",
            **fit_kwargs) -> FitResult:
    """Fit a deep prior to one noisy clip.

    ``design`` one of :data:`dap.priors.ALL_DESIGNS`; ``config`` the engine's settings, required
    (:func:`dap.studies.fit_config` gives a profile's) so that no fit runs the paper's budget by accident.
    noisy, clean: ``(L,)`` with ``L`` a multiple of 256 samples (the U-Net pools twice over
    ``L / 64`` frames). With ``clean`` the engine tracks SNR/PSNR per iteration and keeps the
    oracle output; without it only the blind rules exist. ``noise``: the estimator of
    :func:`dap.noise.estimate_noise` (``"auto"``, ``"white"``, ``"coloured"``) run on ``noisy``
    alone, or a ready :class:`~dap.noise.NoiseEstimate`; its loss floor enables the
    ``discrepancy`` rule (``None``: no such rule). ``result.extra`` records the estimate (and,
    with ``clean``, the true floor and the estimate's error in dB: never used by the fit).
    Returns :class:`dap.engine.fit.FitResult` with outputs of shape ``(1, L)``.
    """
    noisy = check_audio(noisy, "noisy clip")
    length = noisy.shape[0]
    estimate = estimate_noise(noisy, noise) if isinstance(noise, str) else noise
    target = stft(noisy)[None]  # (1, 2, F, T)
    torch.manual_seed(seed)  # network initialisation
    generator = LatentPrior(build_prior(design, **(prior_opts or {})), tuple(target.shape), seed)
    cache: dict = {}

    def loss_fn(pred: torch.Tensor) -> torch.Tensor:
        """MSE between the prior's output and the noisy STFT.

        Args:
            pred: ``(1, 2, F, T)``.

        Returns:
            A scalar ``()``.
        """
        if "target" not in cache:
            cache["target"] = target.to(pred.device)
        return torch.mean((pred - cache["target"]) ** 2)

    def decode(pred: torch.Tensor) -> torch.Tensor:
        """The waveform of a prediction.

        Args:
            pred: ``(1, 2, F, T)``.

        Returns:
            ``(1, L)``.
        """
        return istft(pred, length, mismatched=mismatched_istft)  # (1, L)

    track = None
    if clean is not None:
        clean = check_audio(clean, "clean reference")

        def track(wav: np.ndarray) -> dict[str, float]:
            return {"snr": metrics.snr(clean, wav[0]), "psnr": metrics.psnr(clean, wav[0])}

    result = fit(generator, loss_fn, decode, config, track=track,
                 noise_floor=None if estimate is None else estimate.loss_floor, **fit_kwargs)
    if estimate is not None:
        result.extra.update(noise_estimator=estimate.kind, noise_sigma_est=round(estimate.sigma, 6),
                            input_snr_est=round(estimate.input_snr_db, 3))
        if clean is not None:
            true = true_loss_floor(noisy, clean)
            result.extra.update(noise_floor_true=true,
                                noise_floor_error_db=round(10 * np.log10(estimate.loss_floor / true), 3))
    return result


def evaluate(clean: np.ndarray, estimate: np.ndarray, pesq_mode: str = "wb") -> dict[str, float]:
    """Table 1-2 metrics of one restored clip: PESQ (``pesq_mode``), PSNR and SNR (dB)."""
    estimate = np.asarray(estimate).reshape(-1)
    return {"PESQ": metrics.pesq(clean, estimate, mode=pesq_mode), "PSNR": metrics.psnr(clean, estimate),
            "SNR": metrics.snr(clean, estimate)}


def corrupt(clean: np.ndarray, seed: int, sigma: float = 0.1) -> Observation:
    """The registered corruption: Gaussian noise of std ``sigma`` (Table 1's), ``(L,)`` -> observation."""
    return Observation(add_gaussian_noise(clean, sigma, seed), extra={"sigma": sigma})


register_task(Task("denoise", corrupt, restore, evaluate, metrics=("PESQ", "PSNR", "SNR"),
                   description="additive noise removed by fitting the noisy STFT (Tables 1-2)"))
