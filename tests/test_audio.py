import numpy as np
import pytest
import soundfile as sf
import torch

from dap import metrics
from dap.core import audio
from dap.core.errors import AudioError


@pytest.fixture
def tone():
    t = np.arange(audio.CLIP_1S) / audio.SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1870 * t)).astype(np.float32)


def test_stft_shapes_match_the_unet_grid():
    assert tuple(audio.stft(np.zeros(audio.CLIP_1S)).shape) == (2, 512, 256)
    assert tuple(audio.stft(np.zeros(audio.CLIP_2S)).shape) == (2, 512, 512)
    assert tuple(audio.stft(np.zeros((3, audio.CLIP_1S))).shape) == (3, 2, 512, 256)


def test_matched_inverse_round_trip_exceeds_100_db():
    x = np.random.default_rng(0).standard_normal(audio.CLIP_1S).astype(np.float32) * 0.3
    y = audio.istft(audio.stft(x), len(x)).numpy()
    assert metrics.snr(x, y) > 100


def test_authors_mismatched_inverse_is_lossy(tone):
    y = audio.istft(audio.stft(tone), len(tone), mismatched=True).numpy()
    snr = metrics.snr(tone, y)
    assert 5 < snr < 40, snr  # the authors' 1022-point inverse: ~20 dB on low-frequency content


def test_istft_batched_and_on_tensors(tone):
    X = audio.stft(torch.from_numpy(np.stack([tone, -tone])))
    y = audio.istft(X, len(tone))
    assert y.shape == (2, len(tone))
    assert torch.allclose(y[0], -y[1], atol=1e-6)


def test_stft_rejects_too_short_signal():
    with pytest.raises(AudioError, match="too short"):
        audio.stft(np.ones(100))


def test_peak_normalise_and_silence():
    assert np.max(np.abs(audio.peak_normalise(np.array([0.1, -0.4, 0.2])))) == pytest.approx(1.0)
    with pytest.raises(AudioError, match="silent"):
        audio.peak_normalise(np.zeros(10))


def test_fix_length_pads_and_crops():
    assert audio.fix_length(np.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert audio.fix_length(np.arange(10), 3, offset=2).tolist() == [2, 3, 4]


def test_check_audio_names_the_problem():
    with pytest.raises(AudioError, match="NaN"):
        audio.check_audio(np.array([0.1, np.nan]), "x")
    with pytest.raises(AudioError, match="empty"):
        audio.check_audio(np.array([]), "x")


def test_save_load_resamples_and_mixes_to_mono(tmp_path, tone):
    stereo = np.stack([tone, tone * 0.5], axis=1)
    path = tmp_path / "a.wav"
    sf.write(path, stereo, 48000)
    y = audio.load_audio(path)  # 48 kHz stereo -> 16 kHz mono
    assert y.ndim == 1 and abs(len(y) - len(tone) / 3) <= 1
    audio.save_audio(tmp_path / "b.flac", y)
    assert np.allclose(audio.load_audio(tmp_path / "b.flac"), y, atol=1e-4)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.load_audio(tmp_path / "missing.wav")
    bogus = tmp_path / "text.wav"
    bogus.write_text("not audio")
    with pytest.raises(AudioError, match="text.wav: cannot be read"):
        audio.load_audio(bogus)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(1600), 16000)
    with pytest.raises(AudioError, match="silent"):
        audio.load_audio(silent)


def test_save_audio_to_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AudioError, match="cannot write"):
        audio.save_audio(blocker / "out.wav", np.zeros(10))
