"""Scores to audio for the generated paper-2 corpus: Bach chorales from music21, FluidR3 soundfont.

Three optional sources, none of them needed by the rest of ``dap`` (checked together by
:func:`require_sources`, which names every missing one and how to install it in ONE error):

* ``music21`` (PyPI, pinned in :data:`PINS`) for the chorale scores it ships (public domain);
* ``tinysoundfont`` (PyPI, install with ``--no-deps``: its pyaudio extra does not build and is not
  used) to render a soundfont into a numpy array, without system libraries;
* the FluidR3 General MIDI soundfont (Debian ``fluid-soundfont-gm``, MIT), or any file named by
  ``$DAP_SOUNDFONT``.

Rendering is at 48 kHz and decimated by 3 with ``scipy.signal.resample_poly`` (a fixed FIR, no
FFT-size heuristics), so the same notes give the same samples on every run. One synthesizer is
kept per process (loading the 148 MB soundfont takes ~1 s); every render starts by silencing all
voices and reselecting the programs, so a render does not depend on the renders before it
(tested in ``tests/test_wiass_corpus.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DatasetError

#: Versions the corpus was built and tested with (the ``corpus`` extra of pyproject.toml).
PINS = {"music21": "10.5.1", "tinysoundfont": "0.3.7"}
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONT_PACKAGE = ("fluid-soundfont-gm", "3.1-5.3")
ENV_SOUNDFONT = "DAP_SOUNDFONT"
RENDER_SR = 48000
DECIMATE = RENDER_SR // SAMPLE_RATE
#: Soundfonts ring after the last note-off; rendered this long past the window, then cut.
TAIL = 0.25


@dataclass(frozen=True)
class Note:
    """One note of a part: onset and offset in seconds, MIDI key, and whether it ends a phrase
    (it carries a fermata in the score)."""

    on: float
    off: float
    key: int
    fermata: bool = False


def soundfont_path() -> Path:
    """The soundfont file: ``$DAP_SOUNDFONT`` when set, else Debian's FluidR3_GM.sf2."""
    return Path(os.environ.get(ENV_SOUNDFONT) or SOUNDFONT)


def missing_sources() -> list[str]:
    """One line per missing source, each saying how to install it (empty when all are there)."""
    out = []
    for name, extra in (("music21", ""), ("tinysoundfont", "--no-deps ")):
        try:
            __import__(name)
        except ImportError:
            out.append(f"the Python package {name} (pip install {extra}{name}=={PINS[name]})")
    font = soundfont_path()
    if not font.is_file():
        pkg = SOUNDFONT_PACKAGE[0]
        out.append(f"the soundfont {font} (apt-get install {pkg}, as root; or set {ENV_SOUNDFONT} to "
                   f"an .sf2 file)" if ENV_SOUNDFONT not in os.environ else
                   f"the soundfont {font} named by ${ENV_SOUNDFONT}")
    return out


def require_sources() -> None:
    """Raise ONE :class:`DatasetError` naming every missing source and its install command."""
    missing = missing_sources()
    if missing:
        raise DatasetError("the generated paper-2 corpus needs " + "; ".join(missing) +
                           "; tools/bootstrap.sh installs them (the soundfont when run as root)")


def source_versions() -> dict[str, str]:
    """Installed versions of the rendering sources (written to the corpus' build info)."""
    from importlib.metadata import version

    return {"music21": version("music21"), "tinysoundfont": version("tinysoundfont"),
            "soundfont": soundfont_path().name, "soundfont_bytes": str(soundfont_path().stat().st_size)}


# ----------------------------------------------------------------------------- scores
def chorale_paths() -> dict[str, str]:
    """``{piece: corpus path}`` of every score under music21's ``bach`` corpus (``.rntxt``
    analyses excluded; MusicXML preferred over Humdrum when both exist). Not all are four-part
    chorales: :func:`chorale_parts` rejects the others."""
    from music21 import corpus

    rank = {".mxl": 0, ".xml": 1, ".krn": 2}
    best: dict[str, Path] = {}
    for p in corpus.getComposer("bach"):
        p = Path(p)
        if p.suffix in rank and (p.stem not in best or rank[p.suffix] < rank[best[p.stem].suffix]):
            best[p.stem] = p
    return {name: str(best[name]) for name in sorted(best)}


def chorale_parts(path: str) -> dict[str, list[tuple[float, float, int, bool]]] | None:
    """``{"Soprano": [(on_q, off_q, midi, fermata), ...], "Alto": ..., ...}`` in quarter notes, or
    None when the score is not a four-part S/A/T/B chorale."""
    from music21 import converter, expressions

    score = converter.parse(path)
    parts = {}
    for part in score.parts:
        notes = []
        flat = part.stripTies().flatten()
        for n in flat.notes:
            on = float(flat.elementOffset(n))
            fermata = any(isinstance(e, expressions.Fermata) for e in n.expressions)
            notes.extend((on, on + float(n.quarterLength), p.midi, fermata) for p in n.pitches)
        parts[(part.partName or "").strip()] = sorted(notes)
    if sorted(parts) != ["Alto", "Bass", "Soprano", "Tenor"] or not all(parts.values()):
        return None
    return parts


# ----------------------------------------------------------------------------- synthesis
_SYNTH: dict = {}


def _synth():
    """The process' synthesizer and soundfont id (loaded once)."""
    font = soundfont_path()
    if _SYNTH.get("font") != font:
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=RENDER_SR)
        _SYNTH.update(font=font, synth=synth, sfid=synth.sfload(str(font)))
    return _SYNTH["synth"], _SYNTH["sfid"]


def render(tracks: list[tuple[int, list[tuple[float, float, int, int]]]], start: int,
           length: int) -> np.ndarray:
    """Render General-MIDI tracks and return samples ``[start, start + length)`` at 16 kHz.

    tracks: ``(preset, [(on_s, off_s, midi_key, velocity), ...])``, one MIDI channel each (at
    most 16, no drums); times in seconds from the render's origin (>= 0). start, length: in
    16-kHz samples. Returns float64 ``(length,)`` (the stereo render averaged to mono).
    """
    synth, sfid = _synth()
    synth.sounds_off()  # a render must not hear the tails of the previous one
    events = note_events(synth, [(sfid, preset, notes) for preset, notes in tracks])
    out = play(synth, events, DECIMATE * (start + length + round(TAIL * SAMPLE_RATE)))
    synth.sounds_off()
    mono = resample_poly(out.astype(np.float64).mean(axis=1), 1, DECIMATE)
    return mono[start:start + length]


def note_events(synth, tracks, rate: int = RENDER_SR) -> list[tuple[int, int, int, int, int]]:
    """Select each track's program on its own channel; return its notes as sorted events.

    tracks: ``(soundfont id, preset, [(on_s, off_s, key, velocity), ...])``. Events are
    ``(sample, is_on, channel, key, velocity)``: at one sample note-offs sort before note-ons, so
    a repeated key is released before it is struck again."""
    events = []
    for chan, (sfid, preset, notes) in enumerate(tracks):
        synth.program_select(chan, sfid, 0, preset)
        for on, off, key, vel in notes:
            events.append((round(on * rate), 1, chan, key, vel))
            events.append((round(off * rate), 0, chan, key, 0))
    return sorted(events)


def play(synth, events, total: int) -> np.ndarray:
    """Run ``synth`` through the :func:`note_events` ``events``: float32 stereo ``(total, 2)``
    (events past ``total`` are cut)."""
    out = np.zeros((total, 2), dtype=np.float32)
    pos = 0
    for when, is_on, chan, key, vel in events:
        when = min(when, total)
        if when > pos:
            out[pos:when] = np.frombuffer(synth.generate(when - pos), dtype=np.float32).reshape(-1, 2)
            pos = when
        if is_on:
            synth.noteon(chan, key, vel)
        else:
            synth.noteoff(chan, key)
    if total > pos:
        out[pos:] = np.frombuffer(synth.generate(total - pos), dtype=np.float32).reshape(-1, 2)
    return out
