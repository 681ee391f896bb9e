"""The embedded default data set: checksums, split sizes, exact lengths, exact silence in stems."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from dap.data.embedded import (EMBEDDED_ROOT, SPLIT_OF_DATASET, load_split, read_manifest,
                               verify)
from dap.core.errors import DatasetError

LENGTH = {"speech_2s": 32768, "digits_1s": 16384, "drums_1s": 16384, "piano_1s": 16384,
          "stems": 131072}


@pytest.fixture(scope="module")
def manifest():
    return read_manifest()


def test_all_manifest_hashes_match():
    verify()  # raises DatasetError naming any file that is missing or altered


def test_every_file_is_in_the_manifest(manifest):
    on_disk = {p.relative_to(EMBEDDED_ROOT).as_posix() for p in EMBEDDED_ROOT.rglob("*.flac")}
    assert on_disk == set(manifest["file"])
    assert manifest["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert not manifest["file"].duplicated().any()


def test_split_sizes_and_kinds(manifest):
    count = manifest.groupby("split").size()
    assert count["speech_2s"] >= 64
    assert count["digits_1s"] == 50
    assert count["drums_1s"] >= 64
    assert count["piano_1s"] >= 64
    piano = manifest[manifest["split"] == "piano_1s"]
    assert set(piano["kind"]) == {"real", "rendered-from-real-samples"}
    drums = manifest[manifest["split"] == "drums_1s"]
    assert "real" in set(drums["kind"])
    stems = manifest[manifest["split"] == "stems"]
    assert stems["stem_group"].nunique() >= 12
    roles = stems.groupby("stem_group")["role"].apply(lambda r: tuple(sorted(r)))
    assert set(roles) == {("accompaniment", "target")}
    assert set(manifest["kind"]) <= {"real", "rendered-from-real-samples", "real-stems-artificial-mix"}
    # speech windows come from distinct prompts
    speech = manifest[manifest["split"] == "speech_2s"]
    assert speech["original_file"].is_unique


def test_digits_cover_ten_digits_in_five_languages(manifest):
    d = manifest[manifest["split"] == "digits_1s"]
    assert sorted(d["language"].unique()) == ["en", "es", "fr", "it", "ru"]
    for _, per_lang in d.groupby("language"):
        assert sorted(per_lang["digit"].astype(int)) == list(range(10))


def test_noise_files_are_labelled_and_5_to_30_s(manifest):
    noise = manifest[manifest["split"] == "noise"]
    assert set(noise["category"]) == {"traffic", "domestic"}
    assert noise["seconds"].between(5, 30).all()


def test_exact_lengths_on_disk(manifest):
    for rel, split, samples in zip(manifest["file"], manifest["split"], manifest["samples"]):
        info = sf.info(str(EMBEDDED_ROOT / rel))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, samples), rel
        if split in LENGTH:
            assert samples == LENGTH[split], rel


def test_stems_exact_zeros_where_recorded():
    clips = load_split("stems")
    with_silence = 0
    for c in clips:
        t, a = c.stems["target"], c.stems["accompaniment"]
        assert c.audio is t and t.shape == a.shape == (131072,)
        silent = {int(f) for f in c.meta["silent_frame_list"].split(";") if f}
        assert len(silent) == int(c.meta["silent_frames"])
        for f in range(131072 // 16000):
            frame = t[f * 16000:(f + 1) * 16000]
            if f in silent:
                assert np.all(frame == 0.0), (c.id, f)
            else:
                assert np.any(frame != 0.0), (c.id, f)
        with_silence += bool(silent)
        assert len(silent) <= 4, c.id          # the target is active in most of each window
        assert np.abs(t + a).max() <= 1.0
    assert with_silence >= 4
    assert with_silence < len(clips)           # and some windows are fully active


def test_corrupted_copy_names_the_bad_files(tmp_path):
    root = tmp_path / "embedded"
    root.mkdir()
    shutil.copy(EMBEDDED_ROOT / "manifest.csv", root / "manifest.csv")
    shutil.copytree(EMBEDDED_ROOT / "digits_1s", root / "digits_1s")
    verify("digits_1s", root=root)  # an intact copy passes
    victim = root / "digits_1s" / "fr_7.flac"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (root / "digits_1s" / "it_2.flac").unlink()
    with pytest.raises(DatasetError) as err:
        verify("digits", root=root)
    msg = str(err.value)
    assert "digits_1s/fr_7.flac" in msg and "sha256 mismatch" in msg
    assert "digits_1s/it_2.flac" in msg and "missing" in msg
    assert "digits_1s/en_0.flac" not in msg
    with pytest.raises(DatasetError, match="fr_7.flac"):
        load_split("digits_1s", root=root)


def test_load_split_is_reproducible():
    a = load_split("digits", n=6, seed=3)
    b = load_split("digits_1s", n=6, seed=3)
    c = load_split("digits", n=6, seed=4)
    assert [x.id for x in a] == [x.id for x in b] == sorted(x.id for x in a)
    assert [x.id for x in a] != [x.id for x in c]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)
    clip = a[0]
    assert clip.dataset == "digits" and clip.source == "embedded" and clip.kind == "real"
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (16384,)
    assert clip.meta["file"] == f"digits_1s/{clip.id}.flac"
    assert 0.9 < np.abs(clip.audio).max() <= 0.95


def test_clip_dataset_names_and_kinds_follow_the_manifest():
    for dataset, split in SPLIT_OF_DATASET.items():
        clips = load_split(split, n=2, seed=0)
        assert [c.dataset for c in clips] == [dataset, dataset]
        assert all(c.kind == c.meta["kind"] for c in clips)


def test_asking_for_too_many_clips_is_a_clear_error(manifest):
    n = int((manifest["split"] == "digits_1s").sum())
    with pytest.raises(DatasetError, match=f"only {n}"):
        load_split("digits", n=n + 1)
    with pytest.raises(DatasetError, match="unknown embedded split"):
        load_split("ljspeech")


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="manifest"):
        read_manifest(tmp_path)
