"""The claims of both papers, as data (:class:`dap.claims.Claim`), read from their text, and the
references each is set against.

Paper 1 (Interspeech 2021), Tables 1-4: the comparisons its text makes (section 4), one claim per
table column, the direction taken from the paper's own numbers (:mod:`dap.report.paper`); a column where the
paper prints the same value for both designs makes no claim and is left out. Each table's *main*
claim, the proposed design better than each other design, is also tested per metric pooled over the
table's data sets (paired per clip, stratified by data set), so that a few clips per data set can
decide it. Denoising claims are tested under the oracle rule (the authors' protocol) and again under
the blind discrepancy rule. Figure 2: the harmonic U-Net needs more iterations (~10x) and restores
slightly worse. Paper 2 (WASPAA 2019), section 5: the baselines, the side-information kinds, PES /
EPS against both baselines, the attention's alignment from models trained as the paper trains them
(without guided attention; the guided models are a labelled extra).

:func:`references_of` says what each claim's method is set against: the trivial answer and the best
classical baseline of its column. :data:`UNTESTED` lists what the rows cannot test, and why.
"""

from __future__ import annotations

from dap.report import paper
from dap.claims.rule import Claim
from dap.priors import DESIGN_LABELS

_DENSE, _EXP, _DIL, _CONV = "dilated_exp_dense", "dilated_exp", "dilated", "conv"

#: Per table: its notebook, task, and the (A, B, what the text says) comparisons it supports.
_TABLES = {
    "table1": ("02_table1_gaussian_denoising", "denoise-gaussian", "Table 1", [
        (_DENSE, _CONV, "the proposed prior is significantly superior to standard convolutions (4.1)"),
        (_DIL, _CONV, "constant dilation is better than regular convolution (4.1)"),
        (_EXP, _DIL, "the exponential dilation schedule improves by a bigger margin (4.1)"),
        (_DENSE, _EXP, "dense connections add to exponential dilation (the ablation; bold = best)"),
    ]),
    "table2": ("03_table2_environmental_denoising", "denoise-environmental", "Table 2", [
        (_DENSE, _CONV, "superior to standard convolutions even under environmental noise (4.1)"),
        (_EXP, _CONV, "exponential dilation beats plain convolution (4.1)"),
        (_DENSE, _EXP, "dense connections add to exponential dilation (bold = best)"),
    ]),
    "table3": ("04_table3_inpainting", "inpaint", "Table 3", [
        (_DENSE, _CONV, "the proposed prior consistently outperforms existing methods (4.2)"),
        (_DENSE, _DIL, "the proposed prior consistently outperforms existing methods (4.2)"),
        (_DENSE, _EXP, "the proposed prior consistently outperforms existing methods (4.2)"),
    ]),
    "table4": ("05_table4_separation", "separate", "Table 4", [
        (_DENSE, _CONV, "the proposed strategies significantly improve separation (4.3)"),
        (_DENSE, _EXP, "dense connections add to exponential dilation (bold = best)"),
    ]),
}


def _label(design: str) -> str:
    return DESIGN_LABELS.get(design, design)


def _metric_id(metric: str) -> str:
    return metric.replace(" ", "").replace(".", "")


#: Denoising claims are also tested under this blind rule (it needs no clean signal).
BLIND_RULE = "discrepancy"


def _rules(task: str) -> tuple[str, ...]:
    return ("oracle", BLIND_RULE) if task.startswith("denoise") else ("oracle",)


def _rule_id(rule: str) -> str:
    return "" if rule == "oracle" else "-blind"


def _rule_text(rule: str) -> str:
    return "" if rule == "oracle" else " [blind discrepancy rule]"


def _table_claims() -> list[Claim]:
    """One claim per (comparison the text makes, table column, selection rule)."""
    out = []
    for table, (notebook, task, source, pairs) in _TABLES.items():
        ref = paper.table(table).set_index(["design", "dataset", "metric"])["mean"]
        columns = list(dict.fromkeys((d, m) for _, d, m in ref.index))
        for rule in _rules(task):
            for k, (a, b, why) in enumerate(pairs, 1):
                for dataset, metric in columns:
                    pa, pb = ref[(a, dataset, metric)], ref[(b, dataset, metric)]
                    if pa == pb:
                        continue  # the paper prints a tie: no claim
                    sign = 1 if pa > pb else -1
                    better = (sign > 0) != (metric in paper.LOWER_IS_BETTER)
                    against = "" if better else "; this column of the paper goes against its text"
                    out.append(Claim(
                        id=f"P1-T{table[-1]}-{k}-{dataset}-{_metric_id(metric)}{_rule_id(rule)}", paper=1,
                        text=f"{_label(a)} {'better' if better else 'worse'} than {_label(b)} (paper: {pa:g} vs "
                             f"{pb:g}). Text: {why}{against}{_rule_text(rule)}",
                        source=source, notebook=notebook, link=f"{notebook}/{table}.md", metric=metric, a=a, b=b,
                        expect=sign, dataset=dataset, task=task, selection=rule))
    return out


def _main_claims() -> list[Claim]:
    """Each table's main claim (section 4: the proposed prior outperforms the other designs), one per
    metric and selection rule: the proposed design better than *each* other design of the table
    (an intersection-union test), pooled over the table's data sets with that metric. Table 4's two
    data sets are the two sources of the same mixtures: their differences are averaged per mixture."""
    out = []
    for table, (notebook, task, source, _) in _TABLES.items():
        ref = paper.table(table)
        others = tuple(d for d in dict.fromkeys(ref["design"]) if d != _DENSE)
        for rule in _rules(task):
            for metric in dict.fromkeys(ref["metric"]):
                datasets = tuple(dict.fromkeys(ref.loc[ref["metric"] == metric, "dataset"]))
                out.append(Claim(
                    id=f"P1-T{table[-1]}-main-{_metric_id(metric)}{_rule_id(rule)}", paper=1,
                    text=f"main claim: {_label(_DENSE)} better than every other design in {metric}, pooled over "
                         f"{', '.join(datasets)} (4){_rule_text(rule)}",
                    source=source, notebook=notebook, link=f"{notebook}/{table}.md", metric=metric, a=_DENSE,
                    b=others, expect=-1 if metric in paper.LOWER_IS_BETTER else 1, dataset=datasets, task=task,
                    selection=rule, per_clip=table == "table4"))
    return out


# Figure 2's fits live in Table 1's store; its own folder holds the figure and the table of costs.
_FIG2 = dict(paper=1, source="Figure 2", notebook="02_table1_gaussian_denoising",
             link="06_figure2_convergence/figure2_convergence.md",
             task="denoise-gaussian", dataset="digits")
_FIGURE2_CLAIMS = [
    Claim(id="P1-F2-iterations", text="the proposed prior needs ~10x fewer iterations than a harmonic-convolution "
          "U-Net (3.3; A − B = log10 of the ratio of the iterations the oracle keeps, ~ +1 in the paper)",
          metric="SNR", a="harmonic", b=_DENSE, quantity="log10 best_iteration", **_FIG2),
    Claim(id="P1-F2-quality", text="and restores slightly better than it (3.3, 4)", metric="SNR", a=_DENSE,
          b="harmonic", **_FIG2),
]

_W = dict(paper=2, notebook="07_wiass_figure2_side_information", source="Figure 2",
          link="07_wiass_figure2_side_information/figure2_medians.md",
          task="wiass", dataset="stems", selection="best-validation")
_MEANINGFUL = ("M1", "M2", "A1", "A2", "A3.1")
#: Figure 3's claims read notebook 08's per-fragment alignment rows: each score is stored beside its
#: exact chance level and the content-blind aligner's score on the same fragment.
_FIG3 = {**_W, "source": "Figure 3", "notebook": "08_wiass_figure3_attention",
         "link": "08_wiass_figure3_attention/figure3_alignment.md"}
#: Suffix of the configurations trained without guided attention (the paper's training).
UNGUIDED = " (unguided)"
#: "Does not change much": the margin of the no-difference claims, in dB of SDR. It must be smaller
#: than the SDR effects the paper reports as effects beside it; the only one it states in numbers is
#: BL2 over BL1, 3.33 - 3.0 = 0.33 dB.
NO_CHANGE_DB = 0.3


def _wiass_claims() -> list[Claim]:
    out = [Claim(id="P2-bl2-bl1-SDR", text="BL2 (meaningless side information) beats BL1 (none): the model uses "
                 "the added capacity (5; 3.33 vs 3.0 dB)", metric="SDR", a="BL2", b="BL1", **_W)]
    for m in ("M1", "M2"):
        for bl in ("BL1", "BL2"):
            for metric in ("SDR", "SIR"):
                out.append(Claim(id=f"P2-{m}-{bl}-{metric}", text=f"vocal-magnitude side information ({m}) improves "
                                 f"{metric} over {bl} (5)", metric=metric, a=m, b=bl, **_W))
    for c in _MEANINGFUL:
        for bl in ("BL1", "BL2"):
            for metric in ("PES", "EPS"):
                out.append(Claim(id=f"P2-{c}-{bl}-{metric}", text=f"meaningful side information ({c}) lowers "
                                 f"{metric} (better) against {bl} (5)", metric=metric, a=c, b=bl, expect=-1, **_W))
    for c in ("A1", "A2", "A3.1"):
        out.append(Claim(id=f"P2-{c}-BL2-SDR-same", text=f"binary activity ({c}) leaves SDR about unchanged against "
                         f"BL2 (within ±{NO_CHANGE_DB:g} dB, below the 0.33 dB BL2 − BL1 effect the paper reports) "
                         f"while PES / EPS improve: what SDR hides (5)", metric="SDR", a=c, b="BL2", expect=0,
                         margin=NO_CHANGE_DB, **_W))
    out += [
        Claim(id="P2-M2-M1-SDR", text="M2 performs slightly better than M1 (random padding as augmentation, 5)",
              metric="SDR", a="M2", b="M1", **_W),
        Claim(id="P2-M2-A1-SDR", text="stronger side information separates better: magnitude (M2) over activity "
              "(A1), both padded to 300 steps (5)", metric="SDR", a="M2", b="A1", **_W),
        Claim(id="P2-M2-A1-SIR", text="stronger side information separates better: magnitude (M2) over activity "
              "(A1), both padded to 300 steps (5)", metric="SIR", a="M2", b="A1", **_W),
    ]
    for suffix, extra in ((UNGUIDED, {}), ("", {"family": "paper 2, Figure 3, guided attention (extra)"})):
        note = "" if not extra else (" [extra: trained with guided attention, a term that uses the true alignment; "
                                     "the paper learns it without]")
        out += [
            Claim(id=f"P2-M2-align{'-guided' if extra else ''}", text="the attention aligns the side information to "
                  f"the mixture: M2's argmax hits the true step far above chance (5, Figure 3){note}",
                  metric="alignment_accuracy", a=f"M2{suffix}", b=f"M2{suffix}",
                  b_metric="chance_alignment_accuracy", b_label="chance (same fragment)", **_FIG3, **extra),
            Claim(id=f"P2-A3.1-segment{'-guided' if extra else ''}", text="with A3.1 the model looks at ones and "
                  "zeros at the right time: its argmax falls in the frame's own run of activity above chance "
                  f"(5, Figure 3){note}", metric="segment_accuracy", a=f"A3.1{suffix}", b=f"A3.1{suffix}",
                  b_metric="chance_segment_accuracy", b_label="chance (same fragment)", **_FIG3, **extra),
        ]
    return out


#: Every tested claim, paper order.
CLAIMS: list[Claim] = _main_claims() + _table_claims() + _FIGURE2_CLAIMS + _wiass_claims()

# ----------------------------------------------------------------------------- references
#: Per task: (trivial answers, classical baselines), each (designs, the selection their rows carry).
#: The trivial answer is what a method that restores nothing returns; several candidates: the
#: strongest on the column is used. Paper 2 has no classical baseline beside its own BL1 / BL2, which
#: are claims; its best non-learned estimate, the constant per-frequency mask, takes that place.
_REFERENCES = {
    "denoise": ((("noisy-input",), "none"), (("wiener-oracle", "noisereduce"), "none")),
    "inpaint": ((("gapped-input",), "none"), (("stft-interp", "ar-interp"), "none")),
    "separate": ((("mixture_to_louder", "half_half"), "trivial"), (("hpss",), "none")),
    "wiass": ((("silence",), "reference"), (("constant-mask",), "reference")),
}
#: Alignment measures are set against references stored beside each score: chance and the
#: content-blind aligner (frame n -> step floor(n K / N)), metric ``<prefix><measure>``.
_ALIGNMENT_REFERENCES = (("chance_", "chance (same fragment)"), ("proportional_", "content-blind aligner"))
#: Metrics where lower is better, both papers.
LOWER_IS_BETTER = set(paper.LOWER_IS_BETTER) | {"PES", "EPS", "L1", "alignment_distance"}


def references_of(claim: Claim) -> dict[str, list[Claim]]:
    """``{"trivial": [...], "baseline": [...]}``: comparisons of the claim's method (paper 1: the
    proposed design; paper 2: the claim's configuration) with each candidate reference on the same
    rows, directed so that ``expect`` is "the method is better". Empty for claims about iterations."""
    if claim.quantity != "value" or isinstance(claim.b, (int, float)):
        return {}
    method = _DENSE if claim.paper == 1 else claim.a
    sign = -1 if claim.metric in LOWER_IS_BETTER else 1
    base = dict(id=f"{claim.id}:ref", paper=claim.paper, text="", source=claim.source, notebook=claim.notebook,
                link=claim.link, metric=claim.metric, a=method, expect=sign, dataset=claim.dataset,
                task=claim.task, selection=claim.selection, per_clip=claim.per_clip)
    if claim.b_metric:  # an alignment measure: its references are stored beside it
        return {kind: [Claim(**base, b=method, b_metric=prefix + claim.metric, b_label=label)]
                for kind, (prefix, label) in zip(("trivial", "baseline"), _ALIGNMENT_REFERENCES)}
    task = (claim.task or "").split("-")[0]
    if task not in _REFERENCES:
        return {}
    return {kind: [Claim(**base, b=design, b_selection=selection) for design in designs]
            for kind, (designs, selection) in zip(("trivial", "baseline"), _REFERENCES[task])}


def reference_family(claim: Claim) -> str:
    """The family whose comparisons with references are corrected together: one per table / figure."""
    return f"{claim.family_key}: against references"


#: (paper, source, claim, why the rows cannot test it).
UNTESTED: list[tuple[int, str, str, str]] = [
    (1, "Abstract, 3", "the proposed prior does not increase network complexity or slow convergence",
     "a property of the architecture: parameter counts and seconds per iteration are in notebook 10 and "
     "results/benchmarks.md, not per-clip rows"),
    (1, "4", "harmonic convolutions were consistently outperformed (not shown in the paper)",
     "no table in the paper; Figure 2's claims above test it on digits"),
    (1, "4.2", "the proposed prior introduces statistically meaningful patterns into the masked regions",
     "qualitative; the gap-only metrics of Table 3 measure it (see table3.md)"),
    (2, "5", "the model learned never to look at the padding values",
     "the rows hold no measure of the attention's weight on padding (Figure 3 shows it)"),
    (2, "5", "more training data (BL2+) improves every metric",
     "the companion has no additional training set"),
]
