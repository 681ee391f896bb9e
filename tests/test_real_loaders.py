"""Real-corpus loaders on tiny fake trees: layouts, lengths, resampling, seeds, and every error."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dap.data as data
from dap.core.audio import load_audio
from dap.data import corpora
from dap.data.real import DataArgumentError, describe_expected_layout, load_real
from dap.core.errors import DapError, DatasetError

SR = 16000


# ----------------------------------------------------------------------------- fake trees
def write_tone(path: Path, sr: int, seconds: float, freq: float = 440.0, channels: int = 1,
               amp: float = 0.5, silent_until: float = 0.0, seed: int = 0) -> Path:
    """A sine plus a little noise, optionally silent for the first ``silent_until`` seconds."""
    t = np.arange(int(round(sr * seconds))) / sr
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    x[t < silent_until] = 0.0
    data_ = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data_.astype(np.float32), sr)
    return path


def make_ljspeech(root: Path) -> Path:
    wavs = root / "LJSpeech-1.1" / "wavs"
    write_tone(wavs / "LJ001-0001.wav", 22050, 4.5, seed=1)
    write_tone(wavs / "LJ001-0002.wav", 22050, 2.5, seed=2)
    write_tone(wavs / "LJ001-0003.wav", 22050, 1.0, seed=3)  # shorter than 2.048 s: skipped
    (root / "LJSpeech-1.1" / "metadata.csv").write_text("LJ001-0001|a|a\n")
    return root


def make_sc09(root: Path) -> Path:
    for split, names in {"train": ["Zero_aaaa_nohash_0", "Seven_bbbb_nohash_1"],
                         "test": ["Three_cccc_nohash_0", "Nine_dddd_nohash_2"]}.items():
        for i, name in enumerate(names):
            write_tone(root / "sc09" / split / f"{name}.wav", SR, 1.0, freq=300 + 100 * i)
    write_tone(root / "sc09" / "train" / "_background_noise_.wav", SR, 1.0)  # not a digit
    return root


def make_wavegan(root: Path, name: str, sr: int, seconds: dict[str, list[float]], **kw) -> Path:
    for split, durations in seconds.items():
        for i, d in enumerate(durations):
            write_tone(root / name / split / f"{name}_{i:03d}.wav", sr, d, seed=i, **kw)
    return root


def make_demand(root: Path) -> Path:
    write_tone(root / "DEMAND" / "DLIVING" / "ch01.wav", SR, 5.0, freq=200)
    write_tone(root / "DEMAND" / "straffic" / "ch01.wav", 48000, 5.0, freq=100)  # lower case
    return root


def make_musdb(root: Path, n_train: int = 5, n_test: int = 2, seconds: float = 9.0) -> Path:
    for subset, count in (("train", n_train), ("test", n_test)):
        for k in range(count):
            track = root / "musdb18hq" / subset / f"Artist {subset} {k} - Song"
            parts = {s: write_tone(track / f"{s}.wav", 44100, seconds, freq=f, channels=2,
                                   amp=0.2, seed=k)
                     for s, f in (("vocals", 660), ("drums", 110), ("bass", 55), ("other", 330))}
            mix = sum(sf.read(str(p), dtype="float32")[0] for p in parts.values())
            sf.write(str(track / "mixture.wav"), mix, 44100)
    return root


def dominant_hz(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


# ----------------------------------------------------------------------------- speech
def test_ljspeech_windows_resampled_and_exact_length(tmp_path):
    clips = load_real("speech", n=3, seed=0, root=make_ljspeech(tmp_path))
    assert len(clips) == 3
    for c in clips:
        assert c.sr == SR and c.source == "real" and c.kind == "LJSpeech-1.1"
        assert c.audio.dtype == np.float32 and c.audio.shape == (32768,)
        assert np.max(np.abs(c.audio)) == pytest.approx(1.0)  # peak-normalised
        # A 440 Hz tone written at 22.05 kHz stays at 440 Hz only if it was resampled.
        assert abs(dominant_hz(c.audio) - 440) < 5
        assert "LJ001-0003" not in c.id  # the 1-s file is too short for a window
    assert len({c.id for c in clips}) == 3
    # 4.5 s -> 72000 samples -> 2 non-overlapping windows; the 2.5-s file gives 1.
    assert sum("LJ001-0001" in c.id for c in clips) == 2


def test_seed_reproduces_and_prefix_is_stable(tmp_path):
    root = make_ljspeech(tmp_path)
    a = load_real("speech", n=2, seed=7, root=root)
    b = load_real("speech", n=2, seed=7, root=root)
    assert [c.id for c in a] == [c.id for c in b]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    everything = load_real("speech", seed=7, root=root)  # n=None: one window per usable file
    assert len(everything) == 2
    assert [c.id for c in everything[:1]] == [c.id for c in load_real("speech", n=1, seed=7,
                                                                       root=root)]
    ids = {tuple(c.id for c in load_real("speech", n=3, seed=s, root=root)) for s in range(6)}
    assert len(ids) > 1  # the seed does change the choice


def test_dap_data_env_and_argument_precedence(tmp_path, monkeypatch):
    root = make_ljspeech(tmp_path / "good")
    monkeypatch.setenv("DAP_DATA", str(root))
    assert len(load_real("speech", n=1)) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="LJSpeech-1.1/wavs/LJ"):
        load_real("speech", n=1, root=tmp_path / "empty")  # the argument wins over DAP_DATA


# ----------------------------------------------------------------------------- digits
def test_sc09_pads_to_16384_and_reads_labels(tmp_path):
    clips = load_real("digits", root=make_sc09(tmp_path))
    assert len(clips) == 4  # the background-noise file is not a digit
    for c in clips:
        assert c.audio.shape == (16384,) and c.kind == "SC09"
        assert not np.any(c.audio[16000:])  # zero-padded at the end
        assert c.meta["label"] in corpora.DIGITS and corpora.DIGITS[c.meta["digit"]] == c.meta["label"]
    test = load_real("digits", split="test", root=tmp_path)
    assert sorted(c.meta["label"] for c in test) == ["nine", "three"]
    assert {c.meta["split"] for c in test} == {"test"}


def test_speech_commands_layout_with_split_lists(tmp_path):
    top = tmp_path / "speech_commands_v0.02"
    for word in ("zero", "one"):
        for k in range(2):
            write_tone(top / word / f"h{k}{word}_nohash_0.wav", SR, 1.0)
    write_tone(top / "dog" / "x_nohash_0.wav", SR, 1.0)  # not a digit word
    (top / "testing_list.txt").write_text("zero/h0zero_nohash_0.wav\n")
    (top / "validation_list.txt").write_text("one/h0one_nohash_0.wav\n")
    assert len(load_real("digits", root=tmp_path)) == 4
    test = load_real("digits", split="test", root=tmp_path)
    assert [c.meta["path"] for c in test] == ["speech_commands_v0.02/zero/h0zero_nohash_0.wav"]
    assert len(load_real("digits", split="train", root=tmp_path)) == 2


# ----------------------------------------------------------------------------- drums, piano
def test_drums_pad_and_crop(tmp_path):
    root = make_wavegan(tmp_path, "drums", SR, {"train": [0.5, 1.5], "test": [0.25]})
    clips = load_real("drums", root=root)
    assert len(clips) == 3 and all(c.audio.shape == (16384,) for c in clips)
    short = next(c for c in clips if c.meta["file_samples"] == 4000)
    assert not np.any(short.audio[4000:]) and np.any(short.audio[:4000])
    assert [c.meta["split"] for c in load_real("drums", split="test", root=root)] == ["test"]


def test_piano_windows_have_energy_and_come_from_48k(tmp_path):
    # 4 s at 48 kHz, silent for the first 2 s: only windows in the second half are allowed.
    root = make_wavegan(tmp_path, "piano", 48000, {"train": [4.0], "valid": [4.0]},
                        silent_until=2.0, freq=523.25)
    clips = load_real("piano", n=2, seed=3, root=root)
    assert len(clips) == 2
    for c in clips:
        assert c.audio.shape == (16384,) and c.kind == "WaveGAN-piano"
        assert c.meta["offset"] >= 2 * SR - 16384 // 2 - 1024  # at most half in the silence
        assert np.mean(np.abs(c.audio) > 1e-2) > 0.45
        assert abs(dominant_hz(c.audio) - 523.25) < 5
    # Each file holds 3 grid slots, of which at most 2 reach into the sounding half.
    more = load_real("piano", n=3, seed=3, root=root)  # needs a second window from one file
    assert len({c.id for c in more}) == 3 and all(c.meta["offset"] >= 2 * SR - 9216 for c in more)
    with pytest.raises(DatasetError, match=r"asked for n=7 clips but only [1-4] usable"):
        load_real("piano", n=7, root=root)


# ----------------------------------------------------------------------------- noise
def test_demand_categories_and_layout_variants(tmp_path):
    clips = load_real("noise", n=4, seed=1, root=make_demand(tmp_path))
    assert len(clips) == 4 and all(c.audio.shape == (32768,) for c in clips)
    assert sorted(c.meta["category"] for c in clips) == ["domestic"] * 2 + ["traffic"] * 2
    traffic = next(c for c in clips if c.meta["env"] == "STRAFFIC")
    assert abs(dominant_hz(traffic.audio) - 100) < 5  # 48 kHz file resampled
    assert len(load_real("noise", n=2, root=tmp_path, length=16384)[0].audio) == 16384


def test_demand_zip_layout_and_missing_env(tmp_path):
    write_tone(tmp_path / "DEMAND" / "DLIVING_16k" / "DLIVING" / "ch01.wav", SR, 3.0)
    with pytest.raises(DatasetError, match=r"DEMAND/STRAFFIC/ch01\.wav") as err:
        load_real("noise", root=tmp_path)
    assert "DLIVING_16k/" in str(err.value) and "Zenodo" in str(err.value)
    write_tone(tmp_path / "DEMAND" / "STRAFFIC_16k" / "STRAFFIC" / "ch01.wav", SR, 3.0)
    assert {c.meta["env"] for c in load_real("noise", root=tmp_path)} == {"DLIVING", "STRAFFIC"}


# ----------------------------------------------------------------------------- stems
def test_musdb_hq_stems_and_splits(tmp_path):
    root = make_musdb(tmp_path)
    clips = load_real("stems", root=root)  # default split: test
    assert len(clips) == 2 and {c.meta["subset"] for c in clips} == {"test"}
    for c in clips:
        assert c.kind == "MUSDB18-HQ" and c.audio.shape == (131072,)
        assert set(c.stems) == {"target", "accompaniment"}
        assert np.array_equal(c.audio, c.stems["target"])
        track = root / c.meta["path"]
        mix = load_audio(track / "mixture.wav")[c.meta["offset"]:][:131072]
        np.testing.assert_allclose(c.stems["target"] + c.stems["accompaniment"], mix, atol=1e-6)
        assert abs(dominant_hz(c.audio) - 660) < 5  # vocals, resampled from 44.1 kHz stereo
    train = load_real("stems", split="train", root=root)
    valid = load_real("stems", split="valid", root=root)
    assert len(train) == 4 and [c.meta["track"] for c in valid] == ["Artist train 4 - Song"]
    assert not {c.meta["track"] for c in train} & {c.meta["track"] for c in valid}


def test_musdb_without_mixture_sums_other_stems(tmp_path):
    root = make_musdb(tmp_path, n_train=0, n_test=1)
    track = next((root / "musdb18hq" / "test").iterdir())
    (track / "mixture.wav").unlink()
    (c,) = load_real("stems", root=root)
    assert c.meta["accompaniment_from"] == "drums + bass + other"
    parts = sum(load_audio(track / f"{s}.wav") for s in ("drums", "bass", "other"))
    np.testing.assert_allclose(c.stems["accompaniment"], parts[c.meta["offset"]:][:131072],
                               atol=1e-6)


def test_only_stem_mp4_is_refused_with_a_pointer_to_hq(tmp_path):
    for name in ("A - x.stem.mp4", "B - y.stem.mp4"):
        p = tmp_path / "musdb18" / "test" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0" * 16)
    with pytest.raises(DatasetError, match=r"\.stem\.mp4") as err:
        load_real("stems", root=tmp_path)
    assert "MUSDB18-HQ" in str(err.value) and "musdb18hq/{train,test}/<track>" in str(err.value)


# ----------------------------------------------------------------------------- errors
def test_no_root_anywhere_explains_dap_data(monkeypatch):
    monkeypatch.delenv("DAP_DATA", raising=False)
    with pytest.raises(DatasetError, match="DAP_DATA") as err:
        load_real("drums", n=1)
    assert "drums/{train,valid,test}/*.wav" in str(err.value)


def test_missing_root_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist") as err:
        load_real("speech", root=tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_missing_corpus_folder_lists_what_is_there(tmp_path):
    (tmp_path / "something_else").mkdir()
    with pytest.raises(DatasetError) as err:
        load_real("speech", root=tmp_path)
    msg = str(err.value)
    assert "LJSpeech-1.1/wavs/LJ*.wav" in msg and "something_else/" in msg
    assert "keithito.com" in msg and "\n" not in msg


def test_empty_folder_names_the_pattern(tmp_path):
    (tmp_path / "LJSpeech-1.1" / "wavs").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"wavs/LJ\*\.wav.*no file matches.*is empty"):
        load_real("speech", root=tmp_path)


def test_corpus_folder_given_as_root_gets_a_hint(tmp_path):
    corpus = make_ljspeech(tmp_path) / "LJSpeech-1.1"
    with pytest.raises(DatasetError, match="looks like the LJSpeech-1.1 folder itself"):
        load_real("speech", root=corpus)


def test_wrong_layout_files_without_split_folders(tmp_path):
    write_tone(tmp_path / "drums" / "kick.wav", SR, 0.5)
    with pytest.raises(DatasetError, match=r"drums/\{train,valid,test\}/\*\.wav") as err:
        load_real("drums", root=tmp_path)
    assert "lie directly in" in str(err.value) and "kick.wav" in str(err.value)


def test_missing_split_folder(tmp_path):
    root = make_wavegan(tmp_path, "drums", SR, {"train": [0.5]})
    with pytest.raises(DatasetError, match=r"drums/test"):
        load_real("drums", split="test", root=root)


def test_musdb_track_missing_stems(tmp_path):
    track = tmp_path / "musdb18hq" / "test" / "Broken - Track"
    write_tone(track / "mixture.wav", 44100, 1.0)
    with pytest.raises(DatasetError, match=r"must hold vocals\.wav") as err:
        load_real("stems", root=tmp_path)
    assert "mixture.wav" in str(err.value)


def test_corrupt_file_is_named(tmp_path):
    root = make_wavegan(tmp_path, "drums", SR, {"train": [0.5]})
    bad = root / "drums" / "train" / "zz_bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(DatasetError, match="zz_bad.wav"):
        load_real("drums", root=root)


def test_too_few_files_for_n(tmp_path):
    root = make_sc09(tmp_path)
    with pytest.raises(DatasetError, match=r"n=10 clips but only 4") as err:
        load_real("digits", n=10, root=root)
    assert "sc09/{train,valid,test}" in str(err.value)


def test_silent_one_shots_are_skipped(tmp_path):
    root = make_wavegan(tmp_path, "drums", SR, {"train": [0.5, 0.5]})
    sf.write(str(root / "drums" / "train" / "silent.wav"), np.zeros(8000, np.float32), SR)
    assert len(load_real("drums", root=root)) == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"dataset": "music"}, "valid names: speech, digits"),
    ({"dataset": "drums", "n": 0}, "n must be a positive integer"),
    ({"dataset": "drums", "seed": -1}, "seed must be"),
    ({"dataset": "drums", "split": "dev"}, "unknown split 'dev'"),
    ({"dataset": "speech", "split": "test"}, "has no train/valid/test split"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    make_wavegan(tmp_path, "drums", SR, {"train": [0.5]})
    make_ljspeech(tmp_path)
    with pytest.raises(DataArgumentError, match=match) as err:
        load_real(root=tmp_path, **kwargs)
    assert isinstance(err.value, ValueError) and isinstance(err.value, DapError)


def test_describe_expected_layout_covers_every_dataset():
    for name in data.DATASETS:
        text = describe_expected_layout(name)
        assert corpora.CORPORA[name].pattern in text and "DAP_DATA" in text
    assert "MUSDB18-HQ" in describe_expected_layout("stems")


# ----------------------------------------------------------------------------- load_clips
def test_load_clips_dispatches_to_embedded(monkeypatch):
    calls = []
    fake = types.ModuleType("dap.data.embedded")
    fake.SPLIT_OF_DATASET = {name: f"split-of-{name}" for name in data.DATASETS}
    fake.load_split = lambda split, n=None, seed=0: calls.append((split, n, seed)) or ["clip"]
    monkeypatch.setitem(sys.modules, "dap.data.embedded", fake)
    assert data.load_clips("piano", n=3, seed=5) == ["clip"]
    assert calls == [("split-of-piano", 3, 5)]
    with pytest.raises(DataArgumentError, match="only applies to source='real'"):
        data.load_clips("piano", root="/somewhere")
    assert len(calls) == 1


def test_load_clips_real_and_bad_names(tmp_path):
    clips = data.load_clips("digits", n=2, seed=1, source="real", root=make_sc09(tmp_path))
    assert len(clips) == 2 and all(isinstance(c, data.Clip) for c in clips)
    with pytest.raises(DataArgumentError, match="valid: embedded, real"):
        data.load_clips("digits", source="web")
    with pytest.raises(DataArgumentError, match="valid names"):
        data.load_clips("birds")
