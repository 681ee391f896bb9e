"""The data of paper 2's study under a profile: the stems' splits and the sets built from them.

The profile's ``corpus`` picks the stems when the notebook's source is ``"embedded"``: the committed
stems, or the generated corpus (:mod:`dap.wiass.corpus`, ``corpus_fragments`` in all, built on first
use). A study on the generated corpus also keeps the embedded test stems (gated like
:func:`dap.wiass.remix.gated_fragments`, so PES is defined on each) to score its models on real
recordings side by side."""

from __future__ import annotations

from dataclasses import dataclass

from dap.core.errors import DatasetError
from dap.wiass.data import load_splits
from dap.wiass.examples import SpectrogramSet
from dap.wiass.references import constant_mask
from dap.wiass.remix import RemixSet, gated_fragments


@dataclass
class StudyData:
    """Fragments per split and the spectrogram sets built from them."""

    splits: dict
    train_set: SpectrogramSet
    valid_set: SpectrogramSet
    test_set: SpectrogramSet
    source: str
    _mask: object = None
    #: the embedded (real) test stems, scored beside a generated corpus' test split; else None
    embedded_test: SpectrogramSet | None = None
    #: their rows, once :func:`dap.wiass.study.figure2_study` has scored them
    embedded_rows: object = None

    @property
    def constant_mask(self):
        """The best constant per-frequency mask ``(F,)`` on the training examples (fitted once)."""
        if self._mask is None:
            self._mask = constant_mask(self.train_set)
        return self._mask


def data_settings(p: dict, source: str) -> dict:
    """What in ``p`` decides the training data (part of every model id)."""
    keys = ("n_train", "n_valid", "copies", "gain_db", "pitch", "circular_shift", "seed", "remix",
            "gate_eval")
    out = {"source": source, **{k: getattr(p, k) for k in keys}}
    if source == "generated":  # (the embedded ids stay as they were)
        out["corpus_fragments"] = p.corpus_fragments
    return out


def study_source(p: dict, source: str) -> str:
    """The stems a study uses: the profile's ``corpus`` in place of ``"embedded"``."""
    return getattr(p, "corpus", "embedded") if source == "embedded" else source


def load_study_data(p: dict, source: str = "embedded", root=None) -> StudyData:
    """Split the stems and build the sets.

    Training: ``p.remix`` remixed examples (:class:`dap.wiass.remix.RemixSet`) when > 0, else
    the paper's ``copies`` augmented copies per fragment. Validation and test: the real pairs, with
    whole 1-s frames of the target gated to silence until each has two silent runs when
    ``p.gate_eval`` (:func:`dap.wiass.remix.gated_fragments`). ``p.strict_sizes`` makes a
    split smaller than asked for an error instead of a silent cut (the paper profile)."""
    source = study_source(p, source)
    splits = load_splits(source, None if source == "generated" else root, n_train=p.n_train,
                         n_valid=p.n_valid, n_test=p.n_test, seed=p.seed,
                         strict=p.strict_sizes, fragments=getattr(p, "corpus_fragments", None))
    for name, frags in splits.items():
        if not frags:
            raise DatasetError(f"the {name} split of the {source} stems is empty")
    if p.gate_eval:
        splits = {**splits, **{k: gated_fragments(splits[k], p.seed) for k in ("valid", "test")}}
    if p.remix:
        train_set = RemixSet(splits["train"], p.remix, seed=p.seed, gain_db=p.gain_db)
    else:
        train_set = SpectrogramSet(splits["train"], copies=p.copies, seed=p.seed,
                                   gain_db=p.gain_db, pitch=p.pitch,
                                   circular_shift=p.circular_shift)
    embedded = None
    if source == "generated":
        embedded = SpectrogramSet(gated_fragments(load_splits("embedded")["test"], p.seed))
    return StudyData(splits, train_set, SpectrogramSet(splits["valid"]),
                     SpectrogramSet(splits["test"]), source, embedded_test=embedded)
