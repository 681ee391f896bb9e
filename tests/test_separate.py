"""Separation (dap.tasks.separate, dap.studies.separation): loss terms on toy inputs with known
values, permutation matching, the collapse guard, a tiny fit and the per-source rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dap.audio import SAMPLE_RATE
from dap.fit import FitConfig
from dap.tasks import separate as S

TINY = {"widths": (4, 8, 16)}
CFG = dict(lr=1e-3, precision="fp32", progress=False, device="cpu")
L = 4096  # 64 frames: small enough for three priors per iteration in a test


def _sources(length: int = L) -> np.ndarray:
    """A 'piano' (two sustained partials) and a 'drum' (a decaying noise burst), ``(2, L)``, peak 1."""
    t = np.arange(length) / SAMPLE_RATE
    piano = np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 880 * t)
    rng = np.random.default_rng(0)
    drum = rng.standard_normal(length) * np.exp(-t / 0.02) * (t > 0.05)
    return np.stack([piano / np.abs(piano).max(), drum / np.abs(drum).max()]).astype(np.float32)


# ----------------------------------------------------------------------------- loss terms
def test_temporal_smoothness_known_values():
    const = torch.rand(1, 1, 6, 1).expand(1, 1, 6, 9)  # constant along time, varies along frequency
    assert float(S.temporal_smoothness(const)) == 0.0
    alternating = torch.tensor([0.0, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 4).expand(1, 1, 3, 4)
    assert float(S.temporal_smoothness(alternating)) == pytest.approx(1.0)


def test_exclusion_is_positive_for_shared_edges_and_zero_for_disjoint_ones():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 64, 64, generator=g)
    assert float(S.exclusion_loss(a, a)) > 0.05
    # piecewise-constant blocks far apart: their edges never meet, at any of the 3 scales
    a1 = torch.zeros(1, 1, 64, 64)
    a1[..., 4:16, 4:16] = 1.0
    a2 = torch.zeros(1, 1, 64, 64)
    a2[..., 40:60, 40:60] = 1.0
    assert float(S.exclusion_loss(a1, a2)) < 1e-5
    assert float(S.exclusion_loss(a1, torch.zeros_like(a1))) < 1e-5  # a silent source shares no edge
    assert float(S.exclusion_loss(a1, a1)) > 100 * float(S.exclusion_loss(a1, a2))
    # symmetric, and differentiable at zero without NaN
    x = torch.rand(1, 1, 32, 32, generator=g, requires_grad=True)
    loss = S.exclusion_loss(x, torch.zeros(1, 1, 32, 32))
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert float(S.exclusion_loss(a, a1)) == pytest.approx(float(S.exclusion_loss(a1, a)))


def test_mask_terms_known_values():
    assert float(S.binarisation_loss(torch.full((1, 1, 4, 4), 0.5))) == pytest.approx(0.25)
    binary = (torch.rand(1, 1, 4, 4) > 0.5).float()
    assert float(S.binarisation_loss(binary)) == 0.0
    assert float(S.coverage_loss(torch.full((1, 1, 4, 4), 0.5), 0.1)) == 0.0
    assert float(S.coverage_loss(torch.zeros(1, 1, 4, 4), 0.1)) == pytest.approx(0.1)
    assert float(S.coverage_loss(torch.ones(1, 1, 4, 4), 0.1)) == pytest.approx(0.1)


def test_separation_loss_terms_and_weights():
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.randn(1, 2, 16, 16, generator=g), torch.randn(1, 2, 16, 16, generator=g)
    m = torch.rand(1, 1, 16, 16, generator=g)
    c1, c2 = S.components(s1, s2, m)
    w = S.SeparationWeights()
    total, terms = S.separation_loss(s1, s2, m, c1 + c2, w)
    assert terms["mixture"] == pytest.approx(0.0, abs=1e-7)  # the modelled mixture is the target
    expected = w.smoothness * terms["smoothness"] + w.exclusion * terms["exclusion"] + w.coverage * terms["coverage"]
    assert float(total) == pytest.approx(expected, rel=1e-5)
    late, _ = S.separation_loss(s1, s2, m, c1 + c2, w, binarise=True)
    assert float(late) == pytest.approx(expected + w.binarisation * terms["binarisation"], rel=1e-5)
    only_mix = S.SeparationWeights(smoothness=0, exclusion=0, coverage=0)
    total, terms = S.separation_loss(s1, s2, m, torch.zeros_like(s1), only_mix)
    assert float(total) == pytest.approx(float((c1 + c2).abs().mean()), rel=1e-6)
    # magnitudes: the regularisers see |c| of real/imag estimates
    assert torch.allclose(S.magnitude(c1), torch.sqrt(c1[:, :1] ** 2 + c1[:, 1:] ** 2), atol=1e-5)


def test_generator_shapes_ranges_and_unpack():
    for domain, channels in (("magnitude", 1), ("complex", 2)):
        gen = S.SeparationGenerator("conv", (1, 2, 512, 16), seed=0, domain=domain, prior_opts=TINY)
        with torch.no_grad():
            out = gen()
        assert out.shape == (1, 2 * channels + 1, 512, 16)
        s1, s2, m = S.unpack(out)
        assert s1.shape == s2.shape == (1, channels, 512, 16) and m.shape == (1, 1, 512, 16)
        assert 0 <= float(m.min()) and float(m.max()) <= 1
        if domain == "magnitude":
            assert float(s1.min()) >= 0 and float(s2.min()) >= 0
        assert not torch.allclose(s1, s2)  # three different networks and latents
    with pytest.raises(S.SeparationError):
        S.SeparationGenerator("conv", (1, 2, 512, 16), seed=0, domain="log")


def test_make_mixture_peak_normalises_each_source():
    refs = _sources()
    mix, r = S.make_mixture(3 * refs[0], 0.2 * refs[1])
    assert np.allclose(np.abs(r).max(axis=1), 1.0)
    assert np.allclose(mix, r.sum(axis=0))


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_matches_the_permutation_and_names_sources():
    refs = _sources(16384)
    rng = np.random.default_rng(3)
    ests = refs + 0.05 * rng.standard_normal(refs.shape).astype(np.float32)
    straight = S.evaluate(refs, ests)
    swapped = S.evaluate(refs, ests[::-1])
    assert straight["permutation"] == 0 and swapped["permutation"] == 1
    for key, value in straight.items():
        if key != "permutation":
            assert swapped[key] == pytest.approx(value), key
    assert set(straight) == {f"{s}|{m}" for s in S.SOURCES for m in S.SEPARATION_METRICS} | {"permutation"}
    assert straight["piano|SDR"] > 15 and straight["piano|SIR"] > 15 and straight["piano|Spec. SNR"] > 10
    # a source estimated as silence: BSS Eval is undefined (NaN), the other metrics still exist
    silent = S.evaluate(refs, np.stack([ests[0], np.zeros_like(ests[1])]))
    assert math.isnan(silent["drums|SDR"]) and math.isfinite(silent["drums|Env. Dist."])


def test_per_source_rows_split_dataset_and_metric():
    from dap.studies.separation import per_source_rows

    rows = pd.DataFrame({"dataset": ["piano+drums"] * 4,
                         "metric": ["piano|SDR", "drums|Env. Dist.", "permutation", "fit"],
                         "value": [1.0, 2.0, 0.0, np.nan], "status": ["ok", "ok", "ok", "failed"]})
    out = per_source_rows(rows)
    assert list(out["dataset"]) == ["piano", "drums", "piano+drums", "piano+drums"]
    assert list(out["metric"]) == ["SDR", "Env. Dist.", "permutation", "fit"]


# ----------------------------------------------------------------------------- guard and fits
def test_collapse_guard_check_iteration():
    g = S.CollapseGuard(collapse_check=0.25, collapse_min_iteration=20)
    assert g.check_iteration(2000) == 500 and g.check_iteration(100) == 25
    assert g.check_iteration(3) is None  # tiny runs are never checked
    assert S.source_levels_db(np.zeros((1, 8)), np.ones(8))[0] < -200
    assert S.source_levels_db(np.ones((1, 8)) * 0.1, np.ones(8))[0] == pytest.approx(-20.0)


def test_forced_collapse_restarts_then_runs_to_the_end():
    refs = _sources()
    mix = refs.sum(axis=0)
    # every estimate is far below +100 dB of the mixture: the guard sees a collapse at iteration 1
    guard = S.CollapseGuard(collapse_db=100.0, collapse_check=0.1, collapse_min_iteration=1, max_restarts=1)
    seen = []
    res = S.restore(mix, "conv", FitConfig(iterations=2, **CFG), seed=0, references=refs, guard=guard,
                    prior_opts=TINY, on_step=lambda it, info: seen.append(it))
    assert res.extra["restarts"] == 1 and res.extra["collapsed"] is True
    assert seen == [1, 1, 2]  # the first attempt stopped at the check, the last one ran to the end
    assert res.iterations == 2 and res.ok and res.outputs["last"].shape == (2, L)


def test_tiny_fit_end_to_end_without_collapse():
    refs = _sources()
    mix = refs.sum(axis=0)
    guard = S.CollapseGuard(collapse_db=-300.0, collapse_check=0.1, collapse_min_iteration=1)
    res = S.restore(mix, "dilated_exp", FitConfig(iterations=3, **CFG), seed=0, references=refs, guard=guard,
                    domain="complex", prior_opts=TINY)
    assert res.ok and res.extra["restarts"] == 0 and res.extra["collapsed"] is False
    assert set(res.outputs) == {"oracle", "last", "ema"} and res.outputs["oracle"].shape == (2, L)
    assert res.history["snr"].notna().all() and res.extra["source_levels_db"].count(";") == 1
    assert res.history["loss"].iloc[-1] < res.history["loss"].iloc[0]
    values = S.evaluate(refs, res.outputs["oracle"])
    assert all(np.isfinite(values[f"{s}|Env. Dist."]) for s in S.SOURCES)


def test_study_produces_per_source_rows(tmp_path):
    from dap.data.embedded import EMBEDDED_ROOT

    if not (EMBEDDED_ROOT / "manifest.csv").exists():
        pytest.skip("embedded data not built")
    from dap import profiles, studies
    from dap.results import ResultStore

    p = profiles.resolve("05_table4_separation", "smoke", designs=("conv",), iterations=2)
    p["prior_opts"] = TINY
    p["progress"] = False
    mixtures = studies.make_mixtures(2, p["seed"])
    assert mixtures[0].id == studies.make_mixtures(2, p["seed"])[0].id  # reproducible from the seed
    assert np.allclose(mixtures[0].audio, mixtures[0].stems["piano"] + mixtures[0].stems["drums"])
    rows = studies.separation_study(ResultStore(tmp_path), p, progress=lambda *_: None)
    assert set(rows["status"]) == {"ok"}
    assert set(rows["dataset"]) == {"piano", "drums", "piano+drums"}
    per_source = rows[rows["dataset"].isin(["piano", "drums"])]
    assert set(per_source["metric"]) == set(S.SEPARATION_METRICS)
    assert len(per_source) == 3 * 2 * len(S.SEPARATION_METRICS)  # rules x sources x metrics
    assert (rows["restarts"] == 0).all()
    checks = studies.separation_checks(rows)
    assert checks["n_mixtures"] == 1 and checks["per_source_datasets"] == "drums,piano"
