"""Separation (dap.tasks.separate, dap.studies.separation): loss terms on toy inputs with known
values, permutation matching, the collapse guard, a tiny fit and the per-source rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dap.core.audio import SAMPLE_RATE
from dap.engine.fit import FitConfig
from dap.tasks import separate as S
from dap.tasks import separation_loss as SL

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
    assert float(SL.temporal_smoothness(const)) == 0.0
    alternating = torch.tensor([0.0, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 4).expand(1, 1, 3, 4)
    assert float(SL.temporal_smoothness(alternating)) == pytest.approx(1.0)


def test_exclusion_is_positive_for_shared_edges_and_zero_for_disjoint_ones():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 64, 64, generator=g)
    assert float(SL.exclusion_loss(a, a)) > 0.05
    # piecewise-constant blocks far apart: their edges never meet, at any of the 3 scales
    a1 = torch.zeros(1, 1, 64, 64)
    a1[..., 4:16, 4:16] = 1.0
    a2 = torch.zeros(1, 1, 64, 64)
    a2[..., 40:60, 40:60] = 1.0
    assert float(SL.exclusion_loss(a1, a2)) < 1e-5
    assert float(SL.exclusion_loss(a1, torch.zeros_like(a1))) < 1e-5  # a silent source shares no edge
    assert float(SL.exclusion_loss(a1, a1)) > 100 * float(SL.exclusion_loss(a1, a2))
    # symmetric, and differentiable at zero without NaN
    x = torch.rand(1, 1, 32, 32, generator=g, requires_grad=True)
    loss = SL.exclusion_loss(x, torch.zeros(1, 1, 32, 32))
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert float(SL.exclusion_loss(a, a1)) == pytest.approx(float(SL.exclusion_loss(a1, a)))


def test_mask_and_presence_terms_known_values():
    assert float(SL.binarisation_loss(torch.full((1, 1, 4, 4), 0.5))) == pytest.approx(0.25)
    binary = (torch.rand(1, 1, 4, 4) > 0.5).float()
    assert float(SL.binarisation_loss(binary)) == 0.0
    a = torch.ones(1, 1, 4, 4)
    assert float(SL.presence_loss(a, a, 0.1)) == 0.0                       # equal shares
    assert float(SL.presence_loss(a, torch.zeros_like(a), 0.1)) == pytest.approx(0.1)  # one source empty
    assert float(SL.presence_loss(a, 0.2 * a, 0.1)) == pytest.approx(0.1 - 0.04 / 1.04, rel=1e-5)


def test_separation_loss_terms_and_weights():
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.randn(1, 2, 16, 16, generator=g), torch.randn(1, 2, 16, 16, generator=g)
    m1, m2 = torch.rand(1, 1, 1, 16, generator=g).expand(-1, -1, 16, -1), torch.rand(1, 1, 1, 16, generator=g).expand(-1, -1, 16, -1)
    c1, c2 = SL.components(s1, s2, m1, m2)
    w = SL.SeparationWeights(exclusion=0.1, binarisation=0.01)
    total, terms = SL.separation_loss(s1, s2, m1, m2, c1 + c2, w)
    assert terms["mixture"] == pytest.approx(0.0, abs=1e-7)  # the modelled mixture is the target
    expected = w.smoothness * terms["smoothness"] + w.exclusion * terms["exclusion"] + w.presence * terms["presence"]
    assert float(total) == pytest.approx(expected, rel=1e-5)
    late, _ = SL.separation_loss(s1, s2, m1, m2, c1 + c2, w, binarise=True)
    assert float(late) == pytest.approx(expected + w.binarisation * terms["binarisation"], rel=1e-5)
    only_mix = SL.SeparationWeights(smoothness=0, exclusion=0, presence=0)  # the default data term: MSE
    total, terms = SL.separation_loss(s1, s2, m1, m2, torch.zeros_like(s1), only_mix)
    assert float(total) == pytest.approx(float((c1 + c2).square().mean()), rel=1e-6)
    l1, _ = SL.separation_loss(s1, s2, m1, m2, torch.zeros_like(s1),
                               SL.SeparationWeights(smoothness=0, exclusion=0, presence=0, data_norm="l1"))
    assert float(l1) == pytest.approx(float((c1 + c2).abs().mean()), rel=1e-6)
    # smoothness reads the raw sources: time masks that carry all the variation leave it unchanged
    _, raw = SL.separation_loss(s1, s2, torch.ones_like(m1), torch.ones_like(m2), c1 + c2, w)
    assert terms["smoothness"] == pytest.approx(raw["smoothness"], rel=1e-6)
    assert torch.allclose(SL.magnitude(c1), torch.sqrt(c1[:, :1] ** 2 + c1[:, 1:] ** 2), atol=1e-5)


def test_generator_shapes_ranges_and_unpack():
    for domain, channels in (("magnitude", 1), ("complex", 2)):
        gen = S.SeparationGenerator("conv", (1, 2, 512, 16), seed=0, domain=domain, prior_opts=TINY)
        with torch.no_grad():
            out = gen()
        assert out.shape == (1, 2 * channels + 2, 512, 16)
        s1, s2, m1, m2 = S.unpack(out)
        assert s1.shape == s2.shape == (1, channels, 512, 16) and m1.shape == m2.shape == (1, 1, 512, 16)
        for m in (m1, m2):
            assert 0 <= float(m.min()) and float(m.max()) <= 1
            assert torch.allclose(m, m[:, :, :1].expand_as(m))  # a time mask: constant along frequency
        if domain == "magnitude":
            assert float(s1.min()) >= 0 and float(s2.min()) >= 0
        assert not torch.allclose(s1, s2)  # three different networks and latents
    with pytest.raises(S.SeparationError):
        S.SeparationGenerator("conv", (1, 2, 512, 16), seed=0, domain="log")
    with pytest.raises(S.SeparationError, match="data_norm"):
        S.restore(_sources().sum(0), "conv", FitConfig(iterations=1, **CFG), weights=SL.SeparationWeights(data_norm="l3"))


def test_coherent_latent_is_nearly_constant_along_time():
    z = S.coherent_latent((1, 2, 64, 32), seed=0, time_variation=0.1)
    assert z.shape == (1, 2, 64, 32) and float(z.var()) == pytest.approx(1.0, abs=0.15)
    along_time = float(z.var(dim=-1).mean())
    assert along_time < 0.02 < float(z.var(dim=-2).mean())
    assert torch.equal(z, S.coherent_latent((1, 2, 64, 32), seed=0, time_variation=0.1))


def test_make_mixture_sets_the_energy_ratio_and_peak():
    refs = _sources()
    for ratio in (0.0, 6.0, -3.0):
        mix, r = S.make_mixture(3 * refs[0], 0.2 * refs[1], ratio_db=ratio)
        assert 10 * np.log10(np.sum(r[0].astype(np.float64) ** 2) / np.sum(r[1].astype(np.float64) ** 2)) == pytest.approx(ratio, abs=1e-3)
        assert np.abs(mix).max() == pytest.approx(1.0, abs=1e-6)
        assert np.allclose(mix, r.sum(axis=0))
    with pytest.raises(S.SeparationError):
        S.make_mixture(refs[0], refs[1][:-1])
    with pytest.raises(S.SeparationError):
        S.make_mixture(refs[0], refs[1], ratio_db=float("nan"))


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
    assert straight["piano|SDRi"] == pytest.approx(straight["piano|SDR"] - S.evaluate(refs, np.stack([refs.sum(0)] * 2))["piano|SDR"])
    # a source estimated as silence: its BSS Eval values are undefined (NaN), the other source keeps its own
    silent = S.evaluate(refs, np.stack([ests[0], np.zeros_like(ests[1])]))
    assert math.isnan(silent["drums|SDR"]) and math.isfinite(silent["drums|Env. Dist."])
    assert silent["piano|SDR"] == pytest.approx(straight["piano|SDR"], abs=0.05)
    assert silent["drums|Level"] == -math.inf


def test_trivial_answers_score_what_a_fit_that_separates_nothing_scores():
    refs = _sources(16384)
    mix, refs = S.make_mixture(refs[0], refs[1], ratio_db=0.0)
    trivial = S.trivial_estimates(refs)
    assert set(trivial) == set(S.TRIVIAL_ESTIMATES)
    half = S.evaluate(refs, trivial["half_half"])
    assert abs(half["piano|SIR"]) < 6 and abs(half["drums|SIR"]) < 6  # SIR of the mixture itself
    itself = S.evaluate(refs, np.stack([mix, mix]))
    assert itself["piano|SDRi"] == pytest.approx(0.0, abs=1e-6) and itself["drums|SDRi"] == pytest.approx(0.0, abs=1e-6)
    assert half["piano|Level"] == pytest.approx(-6.02, abs=0.01)
    collapsed = S.evaluate(refs, trivial["mixture_to_louder"])
    assert sum(math.isnan(collapsed[f"{s}|SIR"]) for s in S.SOURCES) == 1  # the silent one
    good = S.evaluate(refs, refs + 0.01 * np.random.default_rng(0).standard_normal(refs.shape))
    assert min(good[f"{s}|SIR"] for s in S.SOURCES) > max(half[f"{s}|SIR"] for s in S.SOURCES) + 10


def test_per_source_rows_split_dataset_and_metric():
    from dap.studies.separation import per_source_rows

    rows = pd.DataFrame({"dataset": ["piano+drums"] * 4,
                         "metric": ["piano|SDR", "drums|Env. Dist.", "permutation", "fit"],
                         "value": [1.0, 2.0, 0.0, np.nan], "status": ["ok", "ok", "ok", "failed"]})
    out = per_source_rows(rows)
    assert list(out["dataset"]) == ["piano", "drums", "piano+drums", "piano+drums"]
    assert list(out["metric"]) == ["SDR", "Env. Dist.", "permutation", "fit"]


# ----------------------------------------------------------------------------- guard and fits
def test_collapse_guard_tells_collapse_from_underfitting():
    g = S.CollapseGuard(collapse_db=-15.0, fitted_db=-3.0, check_from=0.3, min_iteration=20)
    assert g.first_check(2000) == 600 and g.first_check(30) == 20
    assert g.collapsed(np.array([-0.5, -25.0]), model_db=-0.4)       # one holds the mixture, one is empty
    assert g.collapsed(np.array([-40.0, -60.0]), model_db=-39.0)     # both shut
    assert not g.collapsed(np.array([-3.0, -3.5]), model_db=0.0)     # a split
    assert not g.collapsed(np.array([-2.0, -20.0]), model_db=-9.0)   # still fitting the mixture
    assert S.source_levels_db(np.zeros((1, 8)), np.ones(8))[0] < -200
    assert S.source_levels_db(np.ones((1, 8)) * 0.1, np.ones(8))[0] == pytest.approx(-20.0)


def test_forced_collapse_restarts_then_runs_to_the_end():
    refs = _sources()
    mix = refs.sum(axis=0)
    # every estimate is far below +100 dB of the mixture: the guard sees a collapse at iteration 1
    guard = S.CollapseGuard(collapse_db=100.0, check_from=0.0, min_iteration=1, max_restarts=1)
    seen = []
    res = S.restore(mix, "conv", FitConfig(iterations=2, **CFG), seed=0, references=refs, guard=guard,
                    prior_opts=TINY, on_step=lambda it, info: seen.append(it))
    assert res.extra["restarts"] == 1 and res.extra["collapsed"] is True
    assert seen == [1, 1, 2]  # the first attempt stopped at the check, the last one ran to the end
    assert res.iterations == 2 and res.ok and res.outputs["last"].shape == (2, L)


def test_tiny_fit_end_to_end_without_collapse():
    refs = _sources()
    mix = refs.sum(axis=0)
    guard = S.CollapseGuard(collapse_db=-300.0, check_from=0.0, min_iteration=1)
    res = S.restore(mix, "dilated_exp", FitConfig(iterations=3, **CFG), seed=0, references=refs, guard=guard,
                    domain="complex", prior_opts=TINY)
    assert res.ok and res.extra["restarts"] == 0 and res.extra["collapsed"] is False
    assert set(res.outputs) >= {"oracle", "last", "ema"} and res.outputs["oracle"].shape == (2, L)
    assert res.history["snr"].notna().all() and res.extra["source_levels_db"].count(";") == 1
    assert (res.history["snr"] <= res.history["snr_mean"] + 1e-9).all()  # the oracle scores the worse source
    assert res.history["loss"].iloc[-1] < res.history["loss"].iloc[0]
    values = S.evaluate(refs, res.outputs["oracle"])
    assert all(np.isfinite(values[f"{s}|Env. Dist."]) for s in S.SOURCES)


def test_study_produces_per_source_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("DAP_PROGRESS", "off")  # no progress bars in the test output
    from dap import studies
    from dap.config import profiles
    from dap.core.store import ResultStore

    p = profiles.resolve("05_table4_separation", "smoke", designs=("conv",), iterations=2, prior_opts=TINY)
    mixtures = studies.make_mixtures(2, p.seed, max_samples=4096)
    assert mixtures[0].id == studies.make_mixtures(2, p.seed)[0].id  # reproducible from the seed
    assert len(mixtures[0].audio) == 4096
    assert np.allclose(mixtures[0].audio, mixtures[0].stems["piano"] + mixtures[0].stems["drums"])
    rows = studies.separation_study(ResultStore(tmp_path), p, progress=lambda *_: None)
    assert set(rows["status"]) == {"ok"}
    assert set(rows["dataset"]) == {"piano", "drums", "piano+drums"}
    per_source = rows[rows["dataset"].isin(["piano", "drums"])]
    assert set(per_source["metric"]) == set(S.SEPARATION_METRICS)
    assert set(per_source["selection"]) == {"oracle", "last", "ema"}  # no noise floor, so no discrepancy rule
    assert len(per_source) == 3 * 2 * len(S.SEPARATION_METRICS)  # rules x sources x metrics
    assert (rows["restarts"] == 0).all()
    trivial = studies.trivial_rows(p)
    assert set(trivial["design"]) == set(S.TRIVIAL_ESTIMATES) and set(trivial["selection"]) == {"trivial"}
    checks = studies.separation_checks(rows, trivial)
    assert checks["n_mixtures"] == 1 and checks["per_source_datasets"] == "drums,piano"
    assert checks["fits/oracle"] == 1 and 0 <= checks["beats_trivial_sir/oracle"] <= 1
    text = studies.per_mixture_report(rows, trivial, p)
    assert "trivial: half half" in text and "of 1 mixtures" in text


# ----------------------------------------------------------------------------- acceptance
ACCEPTANCE = dict(design="conv", widths=(8, 16, 32), samples=8192, iterations=300)


#: The quick profile's mixtures that a small prior does not separate, and why (an expected failure
#: keeps its reason; if it starts passing, the strict mark fails the suite so the reason is revisited).
KNOWN_FAILURES = {
    2: "piano + tabla (a pitched drum): the worse estimate stays +2.0 to +2.6 dB above the best trivial answer "
       "in SIR at seeds 0-3 with the default weights (+0.8 to +3.6 dB over 26 fits of every loss and budget "
       "setting tried), below the +3 dB bar (docs/separation.md)",
}


@pytest.mark.slow
@pytest.mark.parametrize("mixture", [
    0, 1, pytest.param(2, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[2]))])
def test_each_quick_mixture_is_separated_beyond_the_trivial_answers(mixture):
    """Every mixture the quick profile fits (0.512 s each, small priors, oracle rule, default loss:
    MSE data term, smoothness 1.0, presence floor 0.3): both estimates beat both trivial answers in SIR
    by at least 3 dB and neither is more than 10 dB below the mixture (issue 14's bar). Measured on
    the first (a rendered piano excerpt + a real bass-drum hit, 0 dB): +12.0 / +9.6 dB over the best
    trivial answer, levels -4.8 / -6.1 dB; the second meets the bar at seeds 0-3; the third does not
    (:data:`KNOWN_FAILURES`). About half a minute per mixture on 2 cores."""
    from dap.studies.separation import make_mixtures, references

    clip = make_mixtures(3, 0, max_samples=ACCEPTANCE["samples"])[mixture]
    refs = references(clip)
    cfg = FitConfig(iterations=ACCEPTANCE["iterations"], progress=False)
    res = S.restore(clip.audio, ACCEPTANCE["design"], cfg, seed=0, references=refs,
                    prior_opts={"widths": ACCEPTANCE["widths"]})
    assert res.ok, res.error
    trivial = [S.evaluate(refs, est) for est in S.trivial_estimates(refs).values()]
    values = S.evaluate(refs, res.outputs["oracle"])
    for source in S.SOURCES:
        best_trivial = np.nanmax([t[f"{source}|SIR"] for t in trivial])
        assert values[f"{source}|SIR"] >= best_trivial + 3.0, (clip.id, source, values, res.extra)
        assert values[f"{source}|Level"] >= -10.0, (clip.id, source, values, res.extra)
