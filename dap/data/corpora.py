"""The real corpora the papers used: what each public data-set name maps to on disk, and how to
obtain it (no loading here: :mod:`dap.data.real`)."""

from __future__ import annotations

from dataclasses import dataclass

from dap.core.audio import CLIP_1S, CLIP_2S
from dap.core.errors import DapError
from dap.data.clip import DATASETS

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


def corpus_of(dataset: str) -> Corpus:
    """The :class:`Corpus` of the public data-set name ``dataset`` (a clear error otherwise)."""
    if dataset not in CORPORA:
        raise DataArgumentError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    return CORPORA[dataset]


def describe_expected_layout(dataset: str) -> str:
    """A few lines for a person: where ``dataset`` must live under ``<root>`` and how to get it."""
    c = corpus_of(dataset)
    return (f"{dataset} = {c.title}\n"
            f"  expected: <root>/{c.pattern}\n"
            f"  clips:    {c.clips}\n"
            f"  obtain:   {c.obtain}\n"
            f"  <root> is the loader's root= argument or the {ENV_VAR} environment variable")
