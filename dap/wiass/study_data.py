"""The data of paper 2's study under a profile: the stems' splits and the sets built from them."""

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
    return {"source": source, **{k: getattr(p, k) for k in keys}}


def load_study_data(p: dict, source: str = "embedded", root=None) -> StudyData:
    """Split the stems and build the sets.

    Training: ``p.remix`` remixed examples (:class:`dap.wiass.remix.RemixSet`) when > 0, else
    the paper's ``copies`` augmented copies per fragment. Validation and test: the real pairs, with
    whole 1-s frames of the target gated to silence until each has two silent runs when
    ``p.gate_eval`` (:func:`dap.wiass.remix.gated_fragments`). ``p.strict_sizes`` makes a
    split smaller than asked for an error instead of a silent cut (the paper profile)."""
    splits = load_splits(source, root, n_train=p.n_train, n_valid=p.n_valid,
                         n_test=p.n_test, seed=p.seed, strict=p.strict_sizes)
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
    return StudyData(splits, train_set, SpectrogramSet(splits["valid"]),
                     SpectrogramSet(splits["test"]), source)
