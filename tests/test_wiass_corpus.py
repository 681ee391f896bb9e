"""The generated paper-2 corpus (dap.wiass.corpus, dap.wiass.render): sizes, piece-disjoint splits,
exact silences where the manifest says so, byte-identical rebuilds, one clear error per missing
source, and the command line."""

import builtins
import hashlib

import numpy as np
import pytest

from dap.cli import main
from dap.core.errors import DatasetError
from dap.wiass import corpus as C
from dap.wiass import render as R
from dap.wiass.data import FRAGMENT, SPLITS

needs_sources = pytest.mark.skipif(bool(R.missing_sources()),
                                   reason="corpus sources missing: " + "; ".join(R.missing_sources()))


def test_split_sizes_follow_the_paper():
    assert C.split_sizes(2750) == {"train": 2000, "valid": 500, "test": 250}
    assert C.split_sizes(6) == {"train": 4, "valid": 1, "test": 1}
    for n in (3, 4, 7, 11, 100, 331, 5000):
        sizes = C.split_sizes(n)
        assert sum(sizes.values()) == n and min(sizes.values()) >= 1
        assert sizes["train"] >= sizes["valid"] >= sizes["test"]
    with pytest.raises(DatasetError, match="at least 3 fragments"):
        C.split_sizes(2)


def test_piece_splits_are_disjoint_fixed_and_proportional():
    pieces = [f"bwv{i}" for i in range(400)]
    a, b = C.piece_splits(pieces), C.piece_splits(list(reversed(pieces)))
    assert a == b  # independent of the listing order (and of --seed: it takes none)
    assert sorted(sum(a.values(), [])) == sorted(pieces)
    assert not (set(a["train"]) & set(a["test"]) or set(a["valid"]) & set(a["test"])
                or set(a["train"]) & set(a["valid"]))
    assert len(a["test"]) == round(400 * 250 / 2750) and len(a["valid"]) == round(400 * 500 / 2750)


def test_envelope_is_exactly_zero_outside_notes_and_their_release():
    fade = int(C.RELEASE * 16000)
    env = C._envelope([(-1.0, -0.2, 60), (0.5, 1.0, 62), (1.0, 1.5, 64), (8.0, 9.0, 65)], 0, FRAGMENT)
    assert np.all(env[:8000] == 0) and np.all(env[8000:24000] == 1)  # the note before the window is over
    assert np.all(np.diff(env[24000:24000 + fade]) <= 0) and env[24000 + fade - 1] > 0
    assert np.all(env[24000 + fade:128000] == 0) and np.all(env[128000:] == 1)
    assert C._zero_runs(env) == [(0, 8000), (24000 + fade, 128000)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if R.missing_sources():
        pytest.skip("corpus sources missing: " + "; ".join(R.missing_sources()))
    root = tmp_path_factory.mktemp("corpus")
    info = C.build(root / "a", 6, seed=3)
    return root, info


@needs_sources
@pytest.mark.slow
def test_small_corpus_manifest_and_files(built):
    root, info = built
    folder = root / "a"
    rows = C.read_manifest(folder)
    assert [r["split"] for r in rows].count("train") == 4 and len(rows) == 6
    assert info["split_sizes"] == {"train": 4, "valid": 1, "test": 1} and info["bytes"] > 0
    pieces = {s: {r["piece"] for r in rows if r["split"] == s} for s in SPLITS}
    assert not (pieces["train"] & pieces["test"] or pieces["valid"] & pieces["test"]
                or pieces["train"] & pieces["valid"])
    for r in rows:
        assert r["kind"] == "rendered-from-real-samples" and "MIT" in r["license"]
        for stem in ("target", "accompaniment"):
            data = (folder / r[f"{stem}_file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == r[f"{stem}_sha256"]
    splits = C.load_corpus(folder, verify=True)
    kinds = set()
    for frags in splits.values():
        for f in frags:
            assert f.target.shape == (FRAGMENT,) and np.any(f.target) and np.any(f.accompaniment)
            assert f.group == f.meta["piece"]
            spans = C.parse_spans(f.meta["silent_spans"])
            kinds |= {k for _, _, k in spans}
            for a, b, _ in spans:  # exact digital zeros wherever the manifest says silent
                assert b > a and not np.any(f.target[a:b])
            assert f.silent_frames() == int(f.meta["silent_frames"])
            assert int(f.meta["gated_runs"]) == 0 or "gated" in f.meta["silent_spans"]
            assert np.abs(f.mixture).max() <= C.PEAK + 1e-4
    assert "gated" in kinds  # with seed 3 the 6 fragments have gates


@needs_sources
@pytest.mark.slow
def test_rebuild_is_byte_identical_and_the_seed_matters(built, tmp_path):
    root, _ = built
    C.build(tmp_path / "b", 6, seed=3)
    files = sorted(p.relative_to(root / "a") for p in (root / "a").rglob("*.flac"))
    assert len(files) == 12
    for rel in [*files, "manifest.csv"]:
        assert (root / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    C.build(tmp_path / "c", 3, seed=4)  # same test piece (the split is fixed), other draws
    other, first = C.read_manifest(tmp_path / "c")[0], C.read_manifest(root / "a")[0]
    assert other["id"] == first["id"] == "test-0000" and other["piece"] == first["piece"]
    assert other["target_sha256"] != first["target_sha256"]


@needs_sources
def test_a_render_does_not_depend_on_the_render_before():
    notes = [(0.1, 0.6, 67, 90), (0.6, 1.2, 69, 90)]
    first = R.render([(52, notes)], 800, 16000)
    R.render([(0, [(0.0, 2.0, 40, 120), (0.0, 2.0, 47, 120)])], 0, 16000)  # a loud, long other render
    again = R.render([(52, notes)], 800, 16000)
    assert np.any(first) and np.array_equal(first, again)


def test_missing_sources_give_one_error_naming_each_with_its_install_command(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_music(name, *args, **kwargs):
        if name.split(".")[0] in ("music21", "tinysoundfont"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_music)
    monkeypatch.delenv(R.ENV_SOUNDFONT, raising=False)
    monkeypatch.setattr(R, "SOUNDFONT", tmp_path / "FluidR3_GM.sf2")
    with pytest.raises(DatasetError) as err:
        C.build(tmp_path / "out", 6)
    msg = str(err.value)
    assert "pip install music21==10.5.1" in msg
    assert "pip install --no-deps tinysoundfont==0.3.7" in msg
    assert "apt-get install fluid-soundfont-gm" in msg
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_corpus_is_never_replaced(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "require_sources", lambda: None)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="is not a wiass corpus"):
        C.build(tmp_path, 6)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_command_line_errors_are_one_line(monkeypatch, tmp_path, capsys):
    assert main(["corpus", "wiass", "--out", str(tmp_path / "x"), "--fragments", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "at least 3 fragments" in err
    monkeypatch.setenv(R.ENV_SOUNDFONT, str(tmp_path / "none.sf2"))
    assert main(["corpus", "wiass", "--out", str(tmp_path / "x"), "--fragments", "6"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "none.sf2" in err and "DAP_SOUNDFONT" in err
    assert main(["corpus", "nope"]) == 2


@needs_sources
@pytest.mark.slow
def test_ensure_corpus_builds_once_into_the_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(C.ENV_CACHE, str(tmp_path))
    folder = C.ensure_corpus(3, seed=1)
    assert folder.parent == tmp_path and folder.name == f"wiass-corpus-{C.settings_key(3, 1)}"
    assert C.is_built(folder, 3, 1) and not C.is_built(folder, 3, 2)
    monkeypatch.setattr(C, "build", lambda *a, **k: pytest.fail("rebuilt an existing corpus"))
    assert C.ensure_corpus(3, seed=1) == folder
    assert main(["corpus", "wiass", "--fragments", "3", "--seed", "1"]) == 0
    assert "already built" in capsys.readouterr().err


@needs_sources
@pytest.mark.slow
def test_studies_on_the_generated_corpus_keep_every_reference_row(monkeypatch, tmp_path, one_thread):
    """Figures 2 and 3 at smoke scale on a 6-fragment generated corpus: the models and the
    reference rows (silence, constant mask, oracle; chance and content-blind alignment) are scored
    on the generated test split, and Figure 2's models also on the embedded test stems."""
    from dap.core.store import ResultStore
    from dap.config.profiles import resolve
    from dap.wiass import study
    from dap.wiass.figure2 import side_by_side_table
    from dap.wiass.figure3 import alignment_table
    from dap.wiass.references import REFERENCES

    monkeypatch.setenv(C.ENV_CACHE, str(tmp_path / "cache"))
    p = resolve("07_wiass_figure2_side_information", "smoke", corpus="generated",
                corpus_fragments=6, remix=0, gate_eval=False, configurations=("BL1", "M2"))
    rows, data, results = study.figure2_study(ResultStore(tmp_path / "07"), p, progress=False)
    assert data.source == "generated" and {f.group for f in data.splits["test"]} <= {
        r["piece"] for r in C.read_manifest(C.default_folder(6)) if r["split"] == "test"}
    assert set(rows["source"]) == {"generated"} and set(data.embedded_rows["source"]) == {"embedded"}
    table = study.summary_table(rows, p.configurations)
    assert list(table["configuration"]) == ["BL1", "M2", *REFERENCES]
    side = study.publish_side_by_side(rows, data.embedded_rows, tmp_path / "07", p.configurations)
    for name in ("BL1", "M2", *REFERENCES):
        assert f"| {name} " in side
    both = side_by_side_table(rows, data.embedded_rows, p.configurations)
    assert list(both["configuration"]) == ["BL1", "M2", *REFERENCES]
    assert both["n_fragments (embedded)"].tolist() == [6] * 5  # the 6 embedded test stems
    assert (tmp_path / "07" / "figure2_side_by_side.csv").is_file()
    assert not (tmp_path / "07" / "rows.csv").read_text().count(",embedded,")  # claims see one set
    p8 = resolve("08_wiass_figure3_attention", "smoke", corpus="generated", corpus_fragments=6,
                 remix=0, gate_eval=False, configurations=("BL1", "M2"),
                 attention_configurations=("M2",), compare_unguided=False)
    _, alignment, _, _ = study.figure3_study(p8, folder=tmp_path / "08", reuse_from=[tmp_path / "07"],
                                             progress=False)
    t3 = alignment_table(alignment)
    assert {"chance_alignment_accuracy", "proportional_alignment_accuracy"} <= set(t3.columns)
    models = t3[~t3["configuration"].str.endswith("side information)")]
    assert models["chance_alignment_accuracy"].notna().all()
    assert "content-blind aligner (M2 side information)" in set(t3["configuration"])  # a row of its own
