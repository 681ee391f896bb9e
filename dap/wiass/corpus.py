"""A generated corpus for paper 2: Bach chorales, soprano (sung) vs the other three voices.

``python -m dap corpus wiass [--out DIR] [--fragments N] [--seed S]`` (or :func:`ensure_corpus`)
builds, offline and deterministically, ``N`` mono 16-kHz fragments of ``L = 131072`` samples
(8.192 s), each a target stem (the soprano on a GM voice patch, "Choir Aahs" or "Voice Oohs") and
an accompaniment stem (alto, tenor and bass on instruments drawn per fragment), as 16-bit FLAC,
with ``manifest.csv`` (one row per fragment: sha256 of both files, piece, license, kind, the
drawn settings and the silent spans) and ``BUILD_INFO.json`` (settings, versions, build time,
size; written last, so a folder without it is an unfinished build).

Sizes. The default N = 2750 is the paper's 2000 / 500 / 250 train / valid / test fragments
(before augmentation); a smaller N is split in the same proportions with at least one fragment
per split (:func:`split_sizes`).

Splits are disjoint by piece. Every score of music21's ``bach`` corpus goes to test / valid /
train in the proportions 250 : 500 : 2000 by a permutation with the fixed :data:`SPLIT_SEED`,
independent of ``--seed`` and N, so a test piece is never a training piece in any two corpora
built by this module. Scores that are not four-part S/A/T/B chorales are dropped afterwards.
A split's fragments cycle over its pieces (fragment j uses piece ``j mod P``), so pieces recur
with other windows, tempi, keys and instruments when N exceeds the number of pieces.

One fragment (all draws from ``stream(seed, hash(split), j)``, so a fragment does not depend on
the others): tempo ``U(66, 100)`` quarter notes per minute; the whole score transposed by
``U{-4..3}`` half tones; after every fermata (the phrase ends) a breath of ``U(0.35, 0.8)`` s for
all voices; a window of L samples at a random offset of the performance; the accompaniment
either all on one instrument or one instrument per voice, from :data:`ACCOMPANIMENT_PRESETS`;
velocities ``U{80..100}`` (soprano) and ``U{60..90}`` (others).

Exact silences. The soprano is multiplied by an envelope that is 1 while one of its notes is held
and falls to 0 over :data:`RELEASE` (raised cosine) after the note-off, so the soundfont's long
release tail does not fill the rests: wherever no soprano note sounds the target is exactly zero.
The soprano of a chorale rests only at breaths, so each fragment also gets 0, 1 or 2 (probabilities
:data:`GATE_COUNTS`) **gated** runs of ``U(1.5, 3)`` s where the soprano is tacet (its notes that
start there are dropped, one held into the run is cut at its start). ``silent_spans`` in the
manifest lists every run of exact zeros of the envelope as ``start-stop:kind`` in samples, kind
``gated``, ``phrase-end`` (after a fermata) or ``rest``.

Levels: the target is scaled to a target-to-accompaniment energy ratio drawn from ``U(-3, 3)`` dB
(:data:`LEVEL_DB`), measured over the samples where the target is active (the level a listener
hears while the voice sings, as in real vocals-vs-accompaniment mixes), then both stems together so
that the loudest of target, accompaniment and mixture peaks at 0.95.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DatasetError
from dap.core.files import ENV_CACHE, cache_root  # noqa: F401  (ENV_CACHE re-exported)
from dap.core.seeds import stable_hash, stream
from dap.wiass import render as R
from dap.wiass.corpus_reading import INFO, MANIFEST, load_corpus, parse_spans, read_manifest  # re-exported
from dap.wiass.fragment import FRAGMENT, SPLITS

#: Bump when a change alters the corpus' bytes (it is part of the cache folder's name).
CORPUS_VERSION = 1
#: The paper's fragments per split before augmentation (section 4.1).
PAPER_SIZES = {"train": 2000, "valid": 500, "test": 250}
DEFAULT_FRAGMENTS = sum(PAPER_SIZES.values())
#: Seed of the piece -> split assignment: fixed, so splits stay disjoint across seeds and sizes.
SPLIT_SEED = 0
TARGET_PRESETS = {52: "Choir Aahs", 53: "Voice Oohs"}
ACCOMPANIMENT_PRESETS = {0: "Acoustic Grand Piano", 4: "Electric Piano 1", 19: "Church Organ",
                         24: "Acoustic Guitar (nylon)", 42: "Cello", 46: "Orchestral Harp",
                         48: "String Ensemble 1", 60: "French Horn", 70: "Bassoon", 71: "Clarinet"}
QPM = (66.0, 100.0)
TRANSPOSE = (-4, 3)
BREATH = (0.35, 0.8)
LEVEL_DB = (-3.0, 3.0)
#: Fade of the soprano after a note-off, seconds (the envelope is exactly 0 after it).
RELEASE = 0.12
GATE_COUNTS = (0.2, 0.5, 0.3)
GATE_SECONDS = (1.5, 3.0)
PEAK = 0.95
#: Accompaniment notes that started up to this long before the window are rendered (their tails).
PREROLL = 3.0
LICENSE = "MIT (FluidR3_GM soundfont); scores public domain (music21 corpus)"
KIND = "rendered-from-real-samples"
COLUMNS = ["id", "split", "piece", "score", "target_file", "target_sha256", "accompaniment_file",
           "accompaniment_sha256", "samples", "start_s", "qpm", "transpose", "target_preset",
           "accompaniment_presets", "level_db", "tar_db", "silent_spans", "gated_runs",
           "silent_frames", "license", "kind", "source_package", "source_version"]


# ----------------------------------------------------------------------------- plan
def split_sizes(n: int) -> dict[str, int]:
    """Fragments per split for N in total: the paper's 2000 : 500 : 250 proportions (largest
    remainder), at least one per split. ``split_sizes(2750)`` is the paper's; 6 -> 4 / 1 / 1."""
    if n < len(SPLITS):
        raise DatasetError(f"the corpus needs at least {len(SPLITS)} fragments (one per split), got {n}")
    raw = {s: n * PAPER_SIZES[s] / DEFAULT_FRAGMENTS for s in SPLITS}
    out = {s: max(1, int(raw[s])) for s in SPLITS}
    for s in sorted(SPLITS, key=lambda s: int(raw[s]) - raw[s]):  # largest remainder first
        if sum(out.values()) < n:
            out[s] += 1
    while sum(out.values()) > n:  # the minimum of 1 overshot: take from the largest split
        out[max(out, key=out.get)] -= 1
    return out


def piece_splits(pieces: list[str]) -> dict[str, list[str]]:
    """Pieces per split, in the order fragments use them (a fixed permutation of :data:`SPLIT_SEED`;
    the first 250/2750 of the pieces go to test, the next 500/2750 to valid, the rest to train)."""
    pieces = sorted(pieces)
    order = [pieces[i] for i in stream(SPLIT_SEED, stable_hash("pieces")).permutation(len(pieces))]
    n_test = max(1, round(len(pieces) * PAPER_SIZES["test"] / DEFAULT_FRAGMENTS))
    n_valid = max(1, round(len(pieces) * PAPER_SIZES["valid"] / DEFAULT_FRAGMENTS))
    return {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
            "train": order[n_test + n_valid:]}


@dataclass(frozen=True)
class Spec:
    """Everything drawn for one fragment (times in seconds of the performance, window in 16-kHz
    samples; gates as ``(start, stop)`` seconds from the window start)."""

    id: str
    split: str
    piece: str
    score: str
    qpm: float
    transpose: int
    breaths: tuple[float, ...]
    start: int
    target_preset: int
    accompaniment_presets: tuple[int, int, int]
    target_velocity: int
    accompaniment_velocity: int
    level_db: float
    gates: tuple[tuple[float, float], ...]


def _timeline(parts, qpm: float, breaths) -> tuple[callable, float]:
    """Quarter notes -> seconds with a breath after every fermata: ``(seconds(q, onset), length_s)``."""
    ends = sorted({off for notes in parts.values() for _, off, _, f in notes if f})
    ends = np.asarray(ends, dtype=float)
    pauses = np.cumsum(np.asarray(breaths[:len(ends)], dtype=float))

    def seconds(q: float, onset: bool = False) -> float:
        # a note starting at a fermata's end waits for the breath; one ending there does not
        k = int(np.searchsorted(ends, q, side="right" if onset else "left"))
        return q * 60.0 / qpm + (float(pauses[k - 1]) if k else 0.0)

    last = max(off for notes in parts.values() for _, off, _, _ in notes)
    return seconds, seconds(last)


def draw_spec(split: str, j: int, piece: str, score: str, parts, seed: int) -> Spec:
    """The draws of fragment ``j`` of ``split`` (see the module docstring for the ranges)."""
    rng = stream(seed, stable_hash(split), j)
    qpm = float(rng.uniform(*QPM))
    transpose = int(rng.integers(TRANSPOSE[0], TRANSPOSE[1] + 1))
    n_fermatas = len({off for notes in parts.values() for _, off, _, f in notes if f})
    breaths = tuple(float(b) for b in rng.uniform(*BREATH, size=n_fermatas))
    _, total = _timeline(parts, qpm, breaths)
    start = int(rng.integers(0, max(1, int(total * SAMPLE_RATE) - FRAGMENT)))
    presets = sorted(ACCOMPANIMENT_PRESETS)
    if rng.random() < 0.5:
        acc = (int(rng.choice(presets)),) * 3
    else:
        acc = tuple(int(p) for p in rng.choice(presets, size=3))
    target_preset = int(rng.choice(sorted(TARGET_PRESETS)))
    vt, va = int(rng.integers(80, 101)), int(rng.integers(60, 91))
    level = float(rng.uniform(*LEVEL_DB))
    count = int(rng.choice(len(GATE_COUNTS), p=GATE_COUNTS))
    span = FRAGMENT / SAMPLE_RATE
    gates = []
    for g in range(count):  # one gate per equal share of the window, so gates never overlap
        length = float(rng.uniform(*GATE_SECONDS))
        lo, hi = g * span / count, (g + 1) * span / count
        a = float(rng.uniform(lo, max(lo, hi - length)))
        gates.append((a, min(a + length, hi)))
    return Spec(f"{split}-{j:04d}", split, piece, score, qpm, transpose, breaths, start,
                target_preset, acc, vt, va, level, tuple(gates))


# ----------------------------------------------------------------------------- one fragment
@dataclass
class Rendered:
    """target, accompaniment: float64 ``(L,)`` before quantisation; spans: silent runs of the
    target as ``(start, stop, kind)`` samples; tar_db: the measured level over active samples."""

    target: np.ndarray
    accompaniment: np.ndarray
    spans: list[tuple[int, int, str]]
    tar_db: float


def _envelope(notes, start: int, length: int) -> np.ndarray:
    """float64 ``(length,)``: 1 while a note ``(on_s, off_s, ...)`` is held, a raised-cosine fall
    over :data:`RELEASE` after its note-off, exactly 0 elsewhere (window samples)."""
    env = np.zeros(length)
    fade = int(RELEASE * SAMPLE_RATE)
    ramp = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / (fade + 1))  # falls 1 -> 0
    for on, off, *_ in notes:
        a, b = round(on * SAMPLE_RATE) - start, round(off * SAMPLE_RATE) - start
        if b + fade <= 0 or a >= length:
            continue
        env[min(max(a, 0), length):min(max(b, 0), length)] = 1.0  # clamped: no negative slices
        lo, hi = max(b, 0), min(b + fade, length)
        if hi > lo:
            env[lo:hi] = np.maximum(env[lo:hi], ramp[lo - b:hi - b])
    return env


def _zero_runs(env: np.ndarray) -> list[tuple[int, int]]:
    z = np.concatenate([[False], env == 0, [False]])
    edges = np.flatnonzero(z[1:] != z[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def render_fragment(spec: Spec, parts) -> Rendered:
    """Render one fragment's stems (float64 ``(L,)`` each, not yet peak-normalised)."""
    seconds, _ = _timeline(parts, spec.qpm, spec.breaths)
    w0 = spec.start / SAMPLE_RATE
    w1 = w0 + FRAGMENT / SAMPLE_RATE
    origin = max(0.0, w0 - PREROLL)
    timed = {v: [(seconds(a, onset=True), seconds(b), m + spec.transpose, f) for a, b, m, f in notes]
             for v, notes in parts.items()}
    # the soprano, with the tacet (gated) runs: notes starting inside are dropped, one held into
    # a run is cut at its start
    gates = [(w0 + a, w0 + b) for a, b in spec.gates]
    sop = []
    for on, off, key, fermata in timed["Soprano"]:
        if any(a <= on < b for a, b in gates):
            continue
        off = min([off] + [a for a, _ in gates if on < a < off])
        sop.append((on, off, key, fermata))

    def track(notes, vel):  # the notes a window render needs, relative to the origin
        return [(max(on, origin) - origin, off - origin, key, vel)
                for on, off, key, _ in notes if off > origin and on < w1]

    start = spec.start - round(origin * SAMPLE_RATE)  # the window in the render, samples
    target = R.render([(spec.target_preset, track(sop, spec.target_velocity))], start, FRAGMENT)
    acc = R.render([(p, track(timed[v], spec.accompaniment_velocity))
                    for p, v in zip(spec.accompaniment_presets, ("Alto", "Tenor", "Bass"))], start, FRAGMENT)
    env = _envelope(sop, spec.start, FRAGMENT)
    target *= env
    active = env > 0
    tar_db = float("nan")
    if active.any() and np.any(target[active]) and np.any(acc):
        gain = np.sqrt(np.mean(acc ** 2) / np.mean(target[active] ** 2)) * 10 ** (spec.level_db / 20)
        target *= gain
        tar_db = spec.level_db
    spans = []
    offs = {round(off * SAMPLE_RATE) - spec.start: f for _, off, _, f in sop}
    fade = int(RELEASE * SAMPLE_RATE)
    for a, b in _zero_runs(env):
        t_a, t_b = w0 + a / SAMPLE_RATE, w0 + b / SAMPLE_RATE
        if any(ga < t_b and t_a < gb for ga, gb in gates):
            kind = "gated"
        elif offs.get(a - fade):
            kind = "phrase-end"
        else:
            kind = "rest"
        spans.append((a, b, kind))
    return Rendered(target, acc, spans, tar_db)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def _write_flac(path: Path, pcm: np.ndarray) -> str:
    # format, subtype and compression fixed so that the bytes depend only on the samples
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16", format="FLAC", compression_level=1.0)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_fragment(folder: Path, spec: Spec, out: Rendered) -> dict:
    """Peak-normalise, quantise, write ``<split>/<id>_{target,accompaniment}.flac``; the manifest row."""
    t, a = out.target, out.accompaniment
    g = PEAK / max(np.abs(t).max(), np.abs(a).max(), np.abs(t + a).max(), 1e-12)
    t16, a16 = _to_int16(t * g), _to_int16(a * g)
    row = {"id": spec.id, "split": spec.split, "piece": spec.piece, "score": spec.score,
           "samples": FRAGMENT, "start_s": f"{spec.start / SAMPLE_RATE:.6f}", "qpm": f"{spec.qpm:.3f}",
           "transpose": spec.transpose, "target_preset": spec.target_preset,
           "accompaniment_presets": ";".join(map(str, spec.accompaniment_presets)),
           "level_db": f"{spec.level_db:.3f}", "tar_db": f"{out.tar_db:.3f}",
           "silent_spans": ";".join(f"{a}-{b}:{k}" for a, b, k in out.spans),
           "gated_runs": len(spec.gates),
           "silent_frames": int(np.sum(~np.any(t16[: FRAGMENT // SAMPLE_RATE * SAMPLE_RATE]
                                               .reshape(-1, SAMPLE_RATE) != 0, axis=1))),
           "license": LICENSE, "kind": KIND, "source_package": R.SOUNDFONT_PACKAGE[0],
           "source_version": R.SOUNDFONT_PACKAGE[1]}
    (folder / spec.split).mkdir(parents=True, exist_ok=True)
    for stem, pcm in (("target", t16), ("accompaniment", a16)):
        rel = f"{spec.split}/{spec.id}_{stem}.flac"
        row[f"{stem}_file"] = rel
        row[f"{stem}_sha256"] = _write_flac(folder / rel, pcm)
    return row


# ----------------------------------------------------------------------------- the corpus
def settings(fragments: int = DEFAULT_FRAGMENTS, seed: int = 0) -> dict:
    """What the corpus' bytes depend on (hashed into the cache folder's name)."""
    return {"corpus_version": CORPUS_VERSION, "fragments": int(fragments), "seed": int(seed),
            "pins": dict(R.PINS), "soundfont": list(R.SOUNDFONT_PACKAGE)}


def settings_key(fragments: int = DEFAULT_FRAGMENTS, seed: int = 0) -> str:
    blob = json.dumps(settings(fragments, seed), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def default_folder(fragments: int = DEFAULT_FRAGMENTS, seed: int = 0) -> Path:
    return cache_root() / f"wiass-corpus-{settings_key(fragments, seed)}"


def is_built(folder: Path, fragments: int, seed: int) -> bool:
    """True when ``folder`` holds a finished build of these settings (its BUILD_INFO says so)."""
    try:
        info = json.loads((Path(folder) / INFO).read_text())
    except (OSError, ValueError):
        return False
    return info.get("key") == settings_key(fragments, seed)


def _plan(fragments: int, seed: int, log) -> list[tuple[Spec, dict]]:
    """Specs (and their pieces' notes) of every fragment, split by split."""
    from tqdm.auto import tqdm

    paths = R.chorale_paths()
    sizes = split_sizes(fragments)
    plan = []
    for split, pieces in piece_splits(list(paths)).items():
        n, used = sizes[split], []
        bar = tqdm(total=min(n, len(pieces)), desc=f"scores ({split})", unit="piece", file=log,
                   mininterval=1.0, leave=False)
        for piece in pieces:  # the first min(n, P) four-part chorales of the split
            if len(used) >= n:
                break
            parts = R.chorale_parts(paths[piece])
            if parts is not None:
                used.append((piece, parts))
                bar.update(1)
        bar.close()
        if not used:
            raise DatasetError(f"no four-part chorale for the {split} split in music21's corpus")
        for j in range(n):
            piece, parts = used[j % len(used)]
            score = "bach/" + Path(paths[piece]).name
            plan.append((draw_spec(split, j, piece, score, parts, seed), parts))
    return plan


def build(folder: str | os.PathLike, fragments: int = DEFAULT_FRAGMENTS, seed: int = 0,
          log=None) -> dict:
    """Build the corpus into ``folder`` (replaced when it holds an unfinished or other build; a
    non-empty folder without a manifest is refused).

    Written into ``folder + ".partial-<pid>"`` and renamed at the end, so an interrupted build
    never looks finished and two processes building the same folder do not write into each other
    (the later one keeps the first finished build). Returns the build info (also written to
    ``BUILD_INFO.json``): settings, versions, split sizes, ``seconds`` (wall time) and ``bytes``
    (audio + manifest).
    """
    from tqdm.auto import tqdm

    log = log or sys.stderr
    R.require_sources()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        # never delete a folder this module did not write (e.g. a mistyped --out)
        raise DatasetError(f"{folder} exists and is not a wiass corpus (no {MANIFEST}); choose a new "
                           f"or empty folder")
    t0 = time.time()
    work = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    plan = _plan(fragments, seed, log)
    rows = []
    for spec, parts in tqdm(plan, desc="wiass corpus", unit="fragment", file=log, mininterval=1.0):
        rows.append(write_fragment(work, spec, render_fragment(spec, parts)))
    with open(work / MANIFEST, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    info = {"key": settings_key(fragments, seed), **settings(fragments, seed),
            "versions": R.source_versions(), "split_sizes": split_sizes(fragments),
            "pieces": {s: len({r["piece"] for r in rows if r["split"] == s}) for s in SPLITS},
            "seconds": round(time.time() - t0, 1), "bytes": size}
    (work / INFO).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    if is_built(folder, fragments, seed):  # another process finished the same build meanwhile
        shutil.rmtree(work)
        return json.loads((folder / INFO).read_text())
    shutil.rmtree(folder, ignore_errors=True)
    work.rename(folder)
    return info


def ensure_corpus(fragments: int = DEFAULT_FRAGMENTS, seed: int = 0, folder=None,
                  log=None) -> Path:
    """The corpus folder, built on first use (default: :func:`default_folder` in the cache)."""
    log = log or sys.stderr
    folder = Path(folder) if folder is not None else default_folder(fragments, seed)
    if not is_built(folder, fragments, seed):
        info = build(folder, fragments, seed, log=log)
        print(f"wiass corpus: built {fragments} fragments in {info['seconds']:.0f} s, "
              f"{info['bytes'] / 1e6:.1f} MB: {folder}", file=log)
    return folder


def describe(info: dict, folder, found: bool = False) -> str:
    """The one-line summary the command prints at the end (``found``: an earlier build)."""
    sizes = " / ".join(f"{info['split_sizes'][s]}" for s in SPLITS)
    pieces = " / ".join(f"{info['pieces'][s]}" for s in SPLITS)
    return (f"wiass corpus: {info['fragments']} fragments (train / valid / test {sizes}, from "
            f"{pieces} pieces) in {folder}: {info['bytes'] / 1e6:.1f} MB, "
            f"{'already built (in' if found else 'built in'} {info['seconds']:.1f} s{')' if found else ''}")


def command(out=None, fragments: int | None = None, seed: int = 0, log=None) -> int:
    """``python -m dap corpus wiass``: build (or find built) and print where, how big, how long."""
    fragments = DEFAULT_FRAGMENTS if fragments is None else fragments
    log = log or sys.stderr
    split_sizes(fragments)  # a too-small N fails before any source is checked
    folder = Path(out) if out is not None else default_folder(fragments, seed)
    if is_built(folder, fragments, seed):
        info = json.loads((folder / INFO).read_text())
        print(describe(info, folder, found=True), file=log)
        return 0
    print(describe(build(folder, fragments, seed, log=log), folder), file=log)
    return 0
