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

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dap.core.audio import CLIP_1S, CLIP_2S, SAMPLE_RATE, fix_length, load_audio
from dap.data.clip import DATASETS, Clip
from dap.core.errors import AudioError, DapError, DatasetError
from dap.core.seeds import stream

ENV_VAR = "DAP_DATA"
#: A window counts as "non-trivial" when at least MIN_ACTIVE_FRACTION of its ACTIVE_BLOCK-sample
#: blocks are active: block RMS within ACTIVE_DB of the whole file's RMS and above MIN_ACTIVE_RMS
#: (about -80 dBFS, so digital silence never counts). Blocks, not the window RMS, so that a
#: mostly silent window with one loud burst is rejected.
ACTIVE_BLOCK = 1024
ACTIVE_DB = -30.0
MIN_ACTIVE_RMS = 1e-4
MIN_ACTIVE_FRACTION = 0.5
#: MUSDB18 clip length of paper 2: 8.192 s at 16 kHz (256 STFT frames with hop 512).
CLIP_MUSDB = 131072
SPLITS = ("train", "valid", "test")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEMAND_ENVS = {"DLIVING": "domestic", "STRAFFIC": "traffic"}
MUSDB_STEMS = ("mixture", "vocals", "drums", "bass", "other")
#: Paper 2: the 100 MUSDB training tracks are split 80 / 20 (train / valid) in sorted order.
MUSDB_TRAIN_FRACTION = 0.8


class DataArgumentError(DapError, ValueError):
    """A loader was called with an unknown data set, source, split or a bad ``n`` / ``seed``."""


@dataclass(frozen=True)
class Corpus:
    """What one public data-set name maps to on disk."""

    dataset: str
    kind: str      # Clip.kind: the corpus name
    title: str     # human-readable name for messages
    pattern: str   # the expected relative path pattern under <root>
    length: int    # clip length in samples at 16 kHz
    clips: str     # how clips are made, one sentence
    obtain: str    # how to get the corpus, in words


CORPORA: dict[str, Corpus] = {
    "speech": Corpus(
        "speech", "LJSpeech-1.1", "LJSpeech 1.1", "LJSpeech-1.1/wavs/LJ*.wav", CLIP_2S,
        "2.048-s windows (32768 samples) cut from the 22.05 kHz recordings; files shorter than "
        "that are skipped",
        "download LJSpeech 1.1 (the LJ Speech Dataset by Keith Ito, public domain) from "
        "keithito.com/LJ-Speech-Dataset and unpack LJSpeech-1.1.tar.bz2 into <root>"),
    "digits": Corpus(
        "digits", "SC09", "SC09 spoken digits",
        "sc09/{train,valid,test}/<Digit>_<hash>_nohash_<n>.wav (or "
        "speech_commands*/{zero,...,nine}/*.wav)", CLIP_1S,
        "one clip per file, the 1-s recording zero-padded to 16384 samples",
        "download SC09 from Chris Donahue's WaveGAN release (sc09.tar.gz, linked from the "
        "README of "
        "github.com/chrisdonahue/wavegan) and unpack it into <root>, or unpack Google's Speech "
        "Commands v0.02 (download.tensorflow.org, CC-BY-4.0) into <root>/speech_commands_v0.02"),
    "drums": Corpus(
        "drums", "WaveGAN-drums", "WaveGAN drum sounds", "drums/{train,valid,test}/*.wav", CLIP_1S,
        "one clip per one-shot file, zero-padded or cropped to 16384 samples",
        "download the drum sound effects set of WaveGAN (drums.tar.gz, linked from the README of "
        "github.com/chrisdonahue/wavegan) and unpack it into <root>"),
    "piano": Corpus(
        "piano", "WaveGAN-piano", "WaveGAN piano", "piano/{train,valid,test}/*.wav", CLIP_1S,
        "1.024-s windows (16384 samples) with non-trivial energy cut from the 48 kHz recordings",
        "download the piano set of WaveGAN (piano.tar.gz, Bach piano performances, linked from the "
        "README of github.com/chrisdonahue/wavegan) and unpack it into <root>"),
    "noise": Corpus(
        "noise", "DEMAND", "DEMAND noise", "DEMAND/{DLIVING,STRAFFIC}/ch01.wav", CLIP_2S,
        "2.048-s windows (32768 samples, long enough for every clean clip) cut from channel 1 of "
        "the living-room (domestic) and traffic recordings, half from each",
        "download DEMAND (Thiemann, Ito & Vincent 2013) from Zenodo record 1227121: unzip "
        "DLIVING_16k.zip and STRAFFIC_16k.zip (or the _48k ones) into <root>/DEMAND"),
    "stems": Corpus(
        "stems", "MUSDB18-HQ", "MUSDB18-HQ",
        "musdb18hq/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav", CLIP_MUSDB,
        "8.192-s windows (131072 samples): audio = vocals, accompaniment = mixture - vocals; "
        "split train / valid = the first 80 / last 20 MUSDB training tracks in sorted order, "
        "test = the 50 test tracks (default)",
        "download MUSDB18-HQ (uncompressed wav) from Zenodo record 3338373 and unzip it into "
        "<root>/musdb18hq"),
}


# ----------------------------------------------------------------------------- public API
def describe_expected_layout(dataset: str) -> str:
    """A few lines for a person: where ``dataset`` must live under ``<root>`` and how to get it."""
    c = _corpus(dataset)
    return (f"{dataset} = {c.title}\n"
            f"  expected: <root>/{c.pattern}\n"
            f"  clips:    {c.clips}\n"
            f"  obtain:   {c.obtain}\n"
            f"  <root> is the loader's root= argument or the {ENV_VAR} environment variable")


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
                           f"{_nearest_listing(path)}")
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
    c = _corpus(dataset)
    n = _check_n(n)
    seed = _check_seed(seed)
    length = c.length if length is None else _check_length(length)
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


# ----------------------------------------------------------------------------- per corpus
def _load_speech(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    _no_split(c, split)
    wavs = _require_dir(c, base, base / "LJSpeech-1.1" / "wavs", inner=("wavs", "metadata.csv"))
    files = _require_files(c, base, wavs, sorted(wavs.glob("LJ*.wav")), "LJ*.wav")
    return _spread(files, n, seed, lambda i, f, q, rng: _windows_of(c, base, f, q, rng, length))


def _load_drums(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    files = _wavegan_files(c, base, "drums", split)
    return _spread([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: _one_shot(c, base, f, length, {"split": files[i][1]}))


def _load_piano(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    files = _wavegan_files(c, base, "piano", split)
    return _spread([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: _windows_of(c, base, f, q, rng, length,
                                                    {"split": files[i][1]}))


def _load_noise(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    _no_split(c, split)
    demand = _require_dir(c, base, base / "DEMAND", inner=tuple(DEMAND_ENVS))
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
                f"missing. {_listing(demand)} To get it: {c.obtain}.")
        files.append((found, env, category))
    return _spread([f for f, _, _ in files], n, seed,
                   lambda i, f, q, rng: _windows_of(
                       c, base, f, q, rng, length, {"env": files[i][1], "category": files[i][2]}))


def _load_digits(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    _check_split(c, split, SPLITS)
    if (base / "sc09").exists():
        files = _sc09_files(c, base, split)
    else:
        commands = sorted(p for p in base.glob("speech_commands*") if p.is_dir())
        if not commands:
            raise DatasetError(
                f"digits ({c.title}): expected <root>/{c.pattern} under {base}, but neither "
                f"{base / 'sc09'} nor a speech_commands* folder exists. {_listing(base)}"
                f"{_inner_hint(base, ('train', 'valid', 'test'), 'sc09')} To get it: {c.obtain}.")
        files = _speech_commands_files(c, base, commands, split)
    return _spread([f for f, _ in files], n, seed,
                   lambda i, f, q, rng: _one_shot(c, base, f, length, files[i][1]))


def _load_stems(c: Corpus, base: Path, n, seed, split, length) -> list[Clip]:
    split = "test" if split is None else split
    _check_split(c, split, SPLITS)
    hq = base / "musdb18hq"
    if not hq.is_dir():
        _reject_stem_mp4(c, base)
    hq = _require_dir(c, base, hq, inner=("train", "test"))
    subset = "test" if split == "test" else "train"
    folder = hq / subset
    if not folder.is_dir():
        _reject_stem_mp4(c, base)
        raise DatasetError(f"stems ({c.title}): expected {folder}/<track>/vocals.wav (pattern "
                           f"<root>/{c.pattern}), but {folder} does not exist. {_listing(hq)} "
                           f"To get it: {c.obtain}.")
    tracks = sorted(p for p in folder.iterdir() if p.is_dir())
    if not tracks:
        _reject_stem_mp4(c, base)
        raise DatasetError(f"stems ({c.title}): expected track folders "
                           f"{folder}/<track>/{{mixture,vocals,drums,bass,other}}.wav, but there "
                           f"are none. {_listing(folder)} To get it: {c.obtain}.")
    for t in tracks:
        has_acc = (t / "mixture.wav").is_file() or all(
            (t / f"{s}.wav").is_file() for s in ("drums", "bass", "other"))
        if not ((t / "vocals.wav").is_file() and has_acc):
            raise DatasetError(
                f"stems ({c.title}): track folder {t} must hold vocals.wav and mixture.wav (or "
                f"drums.wav, bass.wav, other.wav) as in <root>/{c.pattern}. {_listing(t)} "
                f"To get it: {c.obtain}.")
    if subset == "train":
        n_train = round(MUSDB_TRAIN_FRACTION * len(tracks))
        tracks = tracks[:n_train] if split == "train" else tracks[n_train:]
        if not tracks:
            raise DatasetError(f"stems ({c.title}): split {split!r} is empty: {folder} holds too "
                               f"few tracks for the 80/20 train/valid split")
    return _spread(tracks, n, seed,
                   lambda i, t, q, rng: _stem_windows(c, base, t, q, rng, length, subset, split))


# ----------------------------------------------------------------------------- file lists
def _wavegan_files(c: Corpus, base: Path, name: str, split: str | None) -> list[tuple[Path, str]]:
    """``[(path, split)]`` of ``<root>/<name>/<split>/*.wav``, sorted."""
    _check_split(c, split, SPLITS)
    top = _require_dir(c, base, base / name, inner=SPLITS)
    present = [s for s in SPLITS if (top / s).is_dir()]
    wanted = present if split is None else [split]
    if not present or (split is not None and split not in present):
        need = top / (split or "{train,valid,test}")
        loose = f" ({len(list(top.glob('*.wav')))} wav file(s) lie directly in {top})" \
            if any(top.glob("*.wav")) else ""
        raise DatasetError(f"{name} ({c.title}): expected split folders {need}/*.wav (pattern "
                           f"<root>/{c.pattern}), but {need} does not exist{loose}. "
                           f"{_listing(top)} To get it: {c.obtain}.")
    files = [(p, s) for s in wanted for p in sorted((top / s).glob("*.wav"))]
    if not files:
        where = top / (split or "{train,valid,test}")
        _require_files(c, base, top / wanted[0], [], "*.wav", shown=f"{where}/*.wav")
    return files


_SC09_NAME = re.compile(r"^(zero|one|two|three|four|five|six|seven|eight|nine)_([^_]+)_nohash_",
                        re.IGNORECASE)


def _sc09_files(c: Corpus, base: Path, split: str | None) -> list[tuple[Path, dict]]:
    top = _require_dir(c, base, base / "sc09", inner=SPLITS)
    present = [s for s in SPLITS if (top / s).is_dir()]
    if not present or (split is not None and split not in present):
        need = top / (split or "{train,valid,test}")
        raise DatasetError(f"digits ({c.title}): expected {need}/<Digit>_<hash>_nohash_<n>.wav, "
                           f"but {need} does not exist. {_listing(top)} To get it: {c.obtain}.")
    out = []
    for s in (present if split is None else [split]):
        for p in sorted((top / s).glob("*.wav")):
            m = _SC09_NAME.match(p.name)
            if m:  # SC09 holds only the ten digit words; anything else is not ours to read
                word = m.group(1).lower()
                out.append((p, {"split": s, "label": word, "digit": DIGITS.index(word),
                                "speaker": m.group(2), "layout": "sc09"}))
    if not out:
        where = top / (split or present[0])
        raise DatasetError(f"digits ({c.title}): expected files named "
                           f"<Digit>_<hash>_nohash_<n>.wav (Zero..Nine) in {where}, but none "
                           f"match. {_listing(where)} To get it: {c.obtain}.")
    return out


def _speech_commands_files(c: Corpus, base: Path, candidates: Sequence[Path],
                           split: str | None) -> list[tuple[Path, dict]]:
    top = next((p for p in candidates if any((p / d).is_dir() for d in DIGITS)), None)
    if top is None:
        raise DatasetError(f"digits ({c.title}): expected {candidates[0]}/{{zero,...,nine}}/*.wav "
                           f"(Speech Commands layout), but it has no digit folders. "
                           f"{_listing(candidates[0])} To get it: {c.obtain}.")
    held_out = {}
    if split is not None:
        for s, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
            lst = top / name
            if not lst.is_file():
                raise DatasetError(f"digits ({c.title}): split={split!r} needs {lst} (the "
                                   f"official Speech Commands split list), which is missing. "
                                   f"Use split=None to pool all files. {_listing(top)}")
            for line in lst.read_text().split():
                held_out[line.strip()] = s
    out = []
    for word in DIGITS:
        for p in sorted((top / word).glob("*.wav")):
            rel = f"{word}/{p.name}"
            s = held_out.get(rel, "train") if split is not None else None
            if split is None or s == split:
                out.append((p, {"split": s, "label": word, "digit": DIGITS.index(word),
                                 "speaker": p.name.split("_")[0], "layout": "speech_commands"}))
    if not out:
        raise DatasetError(f"digits ({c.title}): no {{zero,...,nine}}/*.wav files"
                           f"{'' if split is None else f' in split {split!r}'} under {top}. "
                           f"{_listing(top)} To get it: {c.obtain}.")
    return out


def _reject_stem_mp4(c: Corpus, base: Path) -> None:
    """Raise a dedicated message when only the compressed MUSDB18 (.stem.mp4) is present."""
    mp4 = [p for pat in ("*.stem.mp4", "*/*.stem.mp4", "*/*/*.stem.mp4") for p in base.glob(pat)]
    if mp4:
        raise DatasetError(
            f"stems ({c.title}): found {len(mp4)} .stem.mp4 files (e.g. {mp4[0]}): that is the "
            f"compressed MUSDB18, which dap does not read. Expected the wav layout "
            f"<root>/{c.pattern}. Either {c.obtain}, or decode your copy to wav with the musdb "
            f"package's `musdbconvert <musdb18 folder> {base / 'musdb18hq'}`.")


# ----------------------------------------------------------------------------- clip makers
def _spread(items: Sequence, n: int | None, seed: int,
            take: Callable[[int, object, int, np.random.Generator], list[Clip]]) -> list[Clip]:
    """Visit ``items`` in a seeded order and ask each for up to a fair share of clips.

    ``take(index, item, quota, rng)`` returns at most ``quota`` clips, and asking again with a
    larger quota must return the earlier clips first (true for :func:`_grid_windows`: the rng is
    re-created per call). With ``n=None`` each item is asked for one. The share is recomputed
    after every item, so items that give fewer clips (too short, silent) are made up for by the
    following ones; if that is still not enough, items that gave their full share are asked again.
    """
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(items))]
    want = len(items) if n is None else n
    out: list[Clip] = []
    given = dict.fromkeys(order, 0)

    def ask(i: int, extra: int) -> bool:
        # A per-item generator keeps an item's windows independent of the visiting order.
        got = take(i, items[i], given[i] + extra, stream(seed, i))
        got = got[given[i]: given[i] + extra]
        out.extend(got)
        given[i] += len(got)
        return len(got) == extra  # the item may hold more

    may_give = []
    for j, i in enumerate(order):
        if len(out) >= want:
            break
        quota = 1 if n is None else math.ceil((want - len(out)) / (len(order) - j))
        if ask(i, quota):
            may_give.append(i)
    while n is not None and len(out) < want and may_give:
        again, may_give = may_give, []
        for j, i in enumerate(again):
            if len(out) >= want:
                break
            if ask(i, math.ceil((want - len(out)) / (len(again) - j))):
                may_give.append(i)
    return out


def _one_shot(c: Corpus, base: Path, path: Path, length: int, meta: dict) -> list[Clip]:
    """One clip from a one-shot file, or none if the file is silent."""
    x = _read(c, base, path)
    if not np.any(x):
        return []
    y, gain = _peak_normalise(fix_length(x, length))
    rel = _rel(path, base)
    return [Clip(id=f"{c.dataset}/{rel}", dataset=c.dataset, audio=y, source="real", kind=c.kind,
                 meta={"path": rel, "gain": gain, "file_samples": int(x.shape[0]), **meta})]


def _windows_of(c: Corpus, base: Path, path: Path, quota: int, rng: np.random.Generator,
                length: int, meta: dict | None = None) -> list[Clip]:
    """Up to ``quota`` windows of one long recording."""
    if _samples_at_16k(c, base, path) < length:
        return []  # too short: skip without decoding
    x = _read(c, base, path)
    rel = _rel(path, base)
    clips = []
    for start in _grid_windows(x, length, quota, rng):
        y, gain = _peak_normalise(x[start:start + length])
        clips.append(Clip(id=f"{c.dataset}/{rel}@{start}", dataset=c.dataset, audio=y,
                          source="real", kind=c.kind,
                          meta={"path": rel, "offset": int(start), "gain": gain, **(meta or {})}))
    return clips


def _stem_windows(c: Corpus, base: Path, track: Path, quota: int, rng: np.random.Generator,
                  length: int, subset: str, split: str) -> list[Clip]:
    """Up to ``quota`` windows of one MUSDB18-HQ track: vocals and accompaniment."""
    if _samples_at_16k(c, base, track / "vocals.wav") < length:
        return []
    vocals = _read(c, base, track / "vocals.wav")
    if (track / "mixture.wav").is_file():
        mixture, acc_from = _read(c, base, track / "mixture.wav"), "mixture - vocals"
        m = min(len(vocals), len(mixture))
        vocals, mixture = vocals[:m], mixture[:m]
        accomp = mixture - vocals
    else:
        parts = [_read(c, base, track / f"{s}.wav") for s in ("drums", "bass", "other")]
        m = min(len(vocals), *(len(p) for p in parts))
        vocals = vocals[:m]
        accomp = sum(p[:m] for p in parts).astype(np.float32)
        mixture, acc_from = vocals + accomp, "drums + bass + other"
    clips = []
    # Energy is judged on the mixture: windows with silent vocals are legitimate (paper 2's PES).
    for start in _grid_windows(mixture, length, quota, rng):
        sl = slice(start, start + length)
        target = np.ascontiguousarray(vocals[sl], dtype=np.float32)
        rel = _rel(track, base)
        clips.append(Clip(
            id=f"{c.dataset}/{rel}@{start}", dataset=c.dataset, audio=target, source="real",
            kind=c.kind,
            stems={"target": target, "accompaniment": np.ascontiguousarray(accomp[sl],
                                                                           dtype=np.float32)},
            meta={"path": rel, "track": track.name, "subset": subset, "split": split,
                  "offset": int(start), "accompaniment_from": acc_from}))
    return clips


def _grid_windows(x: np.ndarray, length: int, quota: int, rng: np.random.Generator) -> list[int]:
    """Start indices of up to ``quota`` non-overlapping windows with non-trivial energy.

    The windows sit on a grid ``phase + k * length`` (random phase, random slot order), so windows
    taken from the same file never overlap. See MIN_ACTIVE_FRACTION for "non-trivial".
    """
    slots = len(x) // length
    if slots == 0:
        return []
    phase = int(rng.integers(0, len(x) - slots * length + 1))
    floor = max(MIN_ACTIVE_RMS, _rms(x) * 10 ** (ACTIVE_DB / 20))
    starts = []
    for k in rng.permutation(slots):
        start = phase + int(k) * length
        if _active_fraction(x[start:start + length], floor) >= MIN_ACTIVE_FRACTION:
            starts.append(start)
            if len(starts) == quota:
                break
    return starts


def _active_fraction(w: np.ndarray, floor: float) -> float:
    """Fraction of ACTIVE_BLOCK-sample blocks of ``w`` whose RMS reaches ``floor``."""
    block = min(ACTIVE_BLOCK, len(w))
    blocks = w[: len(w) // block * block].astype(np.float64).reshape(-1, block)
    return float(np.mean(np.sqrt(np.mean(blocks ** 2, axis=1)) >= floor))


# ----------------------------------------------------------------------------- small helpers
def _corpus(dataset: str) -> Corpus:
    if dataset not in CORPORA:
        raise DataArgumentError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    return CORPORA[dataset]


def _check_n(n) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataArgumentError(f"n must be a positive integer or None, got {n!r}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise DataArgumentError(f"length must be a positive number of samples, got {length!r}")
    return int(length)


def _check_split(c: Corpus, split: str | None, valid: Sequence[str]) -> None:
    if split is not None and split not in valid:
        raise DataArgumentError(f"{c.dataset} ({c.title}): unknown split {split!r}; valid: "
                                f"{', '.join(valid)} or None")


def _no_split(c: Corpus, split: str | None) -> None:
    if split is not None:
        raise DataArgumentError(f"{c.dataset} ({c.title}) has no train/valid/test split; "
                                f"pass split=None (got {split!r})")


def _require_dir(c: Corpus, base: Path, path: Path, inner: Sequence[str] = ()) -> Path:
    """``path`` if it is a folder, else the one clear DatasetError."""
    if path.is_dir():
        return path
    state = "is a file, not a folder" if path.exists() else "does not exist"
    raise DatasetError(f"{c.dataset} ({c.title}): expected <root>/{c.pattern} under root {base}, "
                       f"but {path} {state}. {_nearest_listing(path)}"
                       f"{_inner_hint(base, inner, path.relative_to(base).parts[0])} "
                       f"To get it: {c.obtain}.")


def _require_files(c: Corpus, base: Path, folder: Path, files: list[Path], glob: str,
                   shown: str | None = None) -> list[Path]:
    if files:
        return files
    raise DatasetError(f"{c.dataset} ({c.title}): expected {shown or f'{folder}/{glob}'} "
                       f"(pattern <root>/{c.pattern}), but no file matches. {_listing(folder)} "
                       f"To get it: {c.obtain}.")


def _inner_hint(base: Path, inner: Sequence[str], wrapper: str) -> str:
    """Say so when ``root`` looks like the corpus folder itself rather than its parent."""
    if any((base / name).exists() for name in inner):
        return (f" {base} looks like the {wrapper} folder itself: give its parent folder as the "
                f"root (or rename/move it so that <root>/{wrapper}/ exists).")
    return ""


def _listing(folder: Path, k: int = 8) -> str:
    """'<folder> contains: a, b, ... (N entries).' or why it cannot be listed."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as exc:
        return f"{folder} cannot be listed ({exc.strerror or exc})."
    if not names:
        return f"{folder} is empty."
    more = f", ... ({len(names)} entries)" if len(names) > k else ""
    return f"{folder} contains: {', '.join(names[:k])}{more}."


def _nearest_listing(path: Path) -> str:
    """List the closest existing ancestor of ``path``, so the message shows what *is* there."""
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    return _listing(parent) if parent.is_dir() else ""


def _read(c: Corpus, base: Path, path: Path) -> np.ndarray:
    """Mono 16 kHz float32 ``(L,)``; silent files come back as zeros for the caller to skip."""
    try:
        return load_audio(path, sr=SAMPLE_RATE, mono=True, allow_silent=True)
    except AudioError as exc:
        raise DatasetError(f"{c.dataset} ({c.title}): a file in the tree under {base} is unusable: "
                           f"{exc}. Replace it from the original archive or delete it.") from None


def _samples_at_16k(c: Corpus, base: Path, path: Path) -> int:
    """Length the file will have at 16 kHz, from its header (no decoding)."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for a bad header
        raise DatasetError(f"{c.dataset} ({c.title}): a file in the tree under {base} is "
                           f"unusable: {path}: cannot be read as audio "
                           f"({' '.join(str(exc).split())}). Replace it from the original archive "
                           f"or delete it.") from None
    return int(info.frames) * SAMPLE_RATE // int(info.samplerate)


def _peak_normalise(x: np.ndarray) -> tuple[np.ndarray, float]:
    peak = float(np.max(np.abs(x)))
    gain = 1.0 / peak if peak > 0 else 1.0
    return np.ascontiguousarray(x * gain, dtype=np.float32), gain


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()
