"""Loaders for the real corpora the papers used, read from a folder the user provides.

Nothing here downloads anything: the corpora are read from ``root`` (argument) or the environment
variable ``DAP_DATA``. Every problem with a tree (missing root, missing folder, no matching files,
unexpected layout, compressed MUSDB18, unreadable file, too few clips) raises **one**
:class:`~dap.core.errors.DatasetError` whose message says which data set, what was expected where, what
was found instead, and how to obtain the corpus.

Layouts under ``<root>`` (see :func:`describe_expected_layout`):

===========  ===================================================================================
speech       ``LJSpeech-1.1/wavs/LJ*.wav`` (22.05 kHz)
digits       ``sc09/{train,valid,test}/<Digit>_<hash>_nohash_<n>.wav`` or
             ``speech_commands*/{zero,...,nine}/*.wav``
drums        ``drums/{train,valid,test}/*.wav`` (WaveGAN drums, 16 kHz one-shots)
piano        ``piano/{train,valid,test}/*.wav`` (WaveGAN piano, long 48 kHz recordings)
noise        ``DEMAND/{DLIVING,STRAFFIC}/ch01.wav`` (also lower-case or ``<ENV>_16k/<ENV>/``)
stems        ``musdb18hq/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``
===========  ===================================================================================

Clips are mono 16 kHz float32. One-shot corpora (digits, drums) give one clip per file, zero-padded
or cropped to 16384 samples. Long-recording corpora (speech, piano, noise, stems) give windows cut
on a non-overlapping grid whose phase and order come from the seed; a window must carry non-trivial
energy (at least half of its 64-ms blocks within 30 dB of the whole file's RMS). Single-source
clips are peak-normalised to 1 (the paper's pre-processing; the gain is in ``meta["gain"]``);
stems keep their levels so that ``target + accompaniment`` is the real mixture.

Reproducibility: file lists are sorted, the visiting order is ``default_rng(seed).permutation``
and each file's window draw uses ``default_rng([seed, file_index])``. So the same seed gives the
same clips in the same order, and while ``n`` does not exceed the number of usable files,
``load_real(d, n=k, seed=s)`` is the first ``k`` clips of ``load_real(d, n=None, seed=s)``.
"""

from __future__ import annotations

import os
from pathlib import Path


from dap.core.errors import DatasetError
from dap.data.clip import Clip
from dap.data.corpora import CORPORA, DEMAND_ENVS, ENV_VAR, MUSDB_TRAIN_FRACTION, SPLITS, Corpus
from dap.data.corpora import DataArgumentError, describe_expected_layout  # noqa: F401 - the public API
from dap.data.corpora import corpus_of
from dap.data.tree import (check_length, check_n, check_seed, check_split, inner_hint, listing, nearest_listing, no_split,
                           reject_stem_mp4, require_dir, require_files, sc09_files, speech_commands_files,
                           wavegan_files)
from dap.data.windows import one_shot, share_clips, stem_windows, windows_of


def data_root(root: str | os.PathLike | None = None, dataset: str | None = None) -> Path:
    """The data root: ``root`` if given, else ``$DAP_DATA``; it must be an existing folder."""
    what = f"{dataset} ({CORPORA[dataset].title})" if dataset in CORPORA else "real data"
    if root is None or str(root) == "":
        env = os.environ.get(ENV_VAR, "")
        if not env:
            c = CORPORA.get(dataset or "")
            hint = f" expected <root>/{c.pattern}; to get it: {c.obtain}." if c else ""
            raise DatasetError(
                f"{what}: no data root given. Pass root=<folder> or set the environment variable "
                f"{ENV_VAR} to the folder that holds the real corpora (e.g. export "
                f"{ENV_VAR}=/data/audio);{hint}")
        root, origin = env, f"from {ENV_VAR}"
    else:
        origin = "from root="
    path = Path(root).expanduser()
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{what}: the data root {path} ({origin}) {state}. "
                           f"{nearest_listing(path)}")
    return path


def load_real(dataset: str, n: int | None = None, seed: int = 0,
              root: str | os.PathLike | None = None, split: str | None = None,
              *, length: int | None = None) -> list[Clip]:
    """Load ``n`` clips of a real corpus (``n=None``: one clip per usable file).

    dataset: one of :data:`~dap.data.clip.DATASETS`. split: ``"train"``, ``"valid"``, ``"test"``
    for digits / drums / piano (``None`` pools all splits: paper 1 trains nothing) and stems
    (``None`` means ``"test"``, paper 2's evaluation set); speech and noise have no splits.
    length: override the clip length in samples (default: the corpus' paper length).
    Returns Clips with ``source="real"``, ``kind`` = corpus name, ``audio`` float32 ``(length,)``.
    """
    c = corpus_of(dataset)
    n = check_n(n)
    seed = check_seed(seed)
    length = c.length if length is None else check_length(length)
    base = data_root(root, dataset)
    loader = {"speech": _load_speech, "digits": _load_digits, "drums": _load_drums,
              "piano": _load_piano, "noise": _load_noise, "stems": _load_stems}[dataset]
    clips = loader(c, base, n, seed, split, length)
    if not clips:
        raise DatasetError(f"{dataset} ({c.title}): no usable clip under {base}: every file was "
                           f"silent or shorter than {length} samples at 16 kHz")
    if n is not None and len(clips) < n:
        raise DatasetError(f"{dataset} ({c.title}): asked for n={n} clips but only {len(clips)} "
                           f"usable ones could be made from <root>/{c.pattern} under {base} "
                           f"(split={split!r}); ask for fewer or add files. To get it: {c.obtain}.")
    return clips


def _load_speech(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    no_split(c, split)
    wavs = require_dir(c, base, base / "LJSpeech-1.1" / "wavs", inner=("wavs", "metadata.csv"))
    files = require_files(c, base, wavs, sorted(wavs.glob("LJ*.wav")), "LJ*.wav")
    return share_clips(files, n, seed, lambda i, f, q, rng: windows_of(c, base, f, q, rng, length))


def _load_drums(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    files = wavegan_files(c, base, "drums", split)
    return share_clips([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: one_shot(c, base, f, length, {"split": files[i][1]}))


def _load_piano(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    files = wavegan_files(c, base, "piano", split)
    return share_clips([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: windows_of(c, base, f, q, rng, length,
                                                    {"split": files[i][1]}))


def _load_noise(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    no_split(c, split)
    demand = require_dir(c, base, base / "DEMAND", inner=tuple(DEMAND_ENVS))
    files = []
    for env, category in DEMAND_ENVS.items():
        candidates = [demand / env / "ch01.wav", demand / env.lower() / "ch01.wav",
                      demand / f"{env}_16k" / env / "ch01.wav",
                      demand / f"{env}_48k" / env / "ch01.wav"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DatasetError(
                f"noise ({c.title}): expected {demand / env / 'ch01.wav'} (the {category} noise, "
                f"also accepted: {env.lower()}/ch01.wav, {env}_16k/{env}/ch01.wav), but it is "
                f"missing. {listing(demand)} To get it: {c.obtain}.")
        files.append((found, env, category))
    return share_clips([f for f, _, _ in files], n, seed,
                   lambda i, f, q, rng: windows_of(
                       c, base, f, q, rng, length, {"env": files[i][1], "category": files[i][2]}))


def _load_digits(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    check_split(c, split, SPLITS)
    if (base / "sc09").exists():
        files = sc09_files(c, base, split)
    else:
        commands = sorted(p for p in base.glob("speech_commands*") if p.is_dir())
        if not commands:
            raise DatasetError(
                f"digits ({c.title}): expected <root>/{c.pattern} under {base}, but neither "
                f"{base / 'sc09'} nor a speech_commands* folder exists. {listing(base)}"
                f"{inner_hint(base, ('train', 'valid', 'test'), 'sc09')} To get it: {c.obtain}.")
        files = speech_commands_files(c, base, commands, split)
    return share_clips([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: one_shot(c, base, f, length, files[i][1]))


def _load_stems(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    split = "test" if split is None else split
    check_split(c, split, SPLITS)
    hq = base / "musdb18hq"
    if not hq.is_dir():
        reject_stem_mp4(c, base)
    hq = require_dir(c, base, hq, inner=("train", "test"))
    subset = "test" if split == "test" else "train"
    folder = hq / subset
    if not folder.is_dir():
        reject_stem_mp4(c, base)
        raise DatasetError(f"stems ({c.title}): expected {folder}/<track>/vocals.wav (pattern "
                           f"<root>/{c.pattern}), but {folder} does not exist. {listing(hq)} "
                           f"To get it: {c.obtain}.")
    tracks = sorted(p for p in folder.iterdir() if p.is_dir())
    if not tracks:
        reject_stem_mp4(c, base)
        raise DatasetError(f"stems ({c.title}): expected track folders "
                           f"{folder}/<track>/{{mixture,vocals,drums,bass,other}}.wav, but there "
                           f"are none. {listing(folder)} To get it: {c.obtain}.")
    for t in tracks:
        has_acc = (t / "mixture.wav").is_file() or all(
            (t / f"{s}.wav").is_file() for s in ("drums", "bass", "other"))
        if not ((t / "vocals.wav").is_file() and has_acc):
            raise DatasetError(
                f"stems ({c.title}): track folder {t} must hold vocals.wav and mixture.wav (or "
                f"drums.wav, bass.wav, other.wav) as in <root>/{c.pattern}. {listing(t)} "
                f"To get it: {c.obtain}.")
    if subset == "train":
        n_train = round(MUSDB_TRAIN_FRACTION * len(tracks))
        tracks = tracks[:n_train] if split == "train" else tracks[n_train:]
        if not tracks:
            raise DatasetError(f"stems ({c.title}): split {split!r} is empty: {folder} holds too "
                               f"few tracks for the 80/20 train/valid split")
    return share_clips(tracks, n, seed,
                   lambda i, t, q, rng: stem_windows(c, base, t, q, rng, length, subset, split))
