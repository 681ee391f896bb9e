"""dap.config.profiles: one typed, frozen settings class per study, read as attributes.

``tests/profiles_reference.json`` holds, for every notebook and profile, ``repr()`` of every value
the dict-based ``resolve`` returned before the settings were typed: the classes must give the
same values, field for field (``repr`` also tells a tuple from a list and 0 from 0.0).
"""

import dataclasses
import json
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest

from dap.config import notebook_settings as settings
from dap.core.errors import DapError
from dap.config.profiles import PROFILES, PROFILES_ORDER, SETTINGS, from_parameters, resolve
from dap.config.notebook_settings import NotebookSettings, SettingsError, SettingsTypeError

REFERENCE = json.loads((Path(__file__).parent / "profiles_reference.json").read_text())["profiles"]
#: NotebookSettings the typed classes added to a notebook, with their value in every profile: the
#: denoising studies accept prior_opts like the other studies (None: the paper's priors, absent
#: from the fit ids, so no result changes) ...
ADDED = {nb: {"prior_opts": None} for nb in ("01_figure1_denoising_example", "02_table1_gaussian_denoising",
                                             "03_table2_environmental_denoising", "06_figure2_convergence")}
#: ... and every paper-1 study can run its fits on a Dask cluster (None: here, as before).
for _nb, _cls in SETTINGS.items():
    if issubclass(_cls, settings.FitSettings):
        ADDED[_nb] = {**ADDED.get(_nb, {}), "cluster": None, "oracle_patience": None, "oracle_cap": None}
CASES = [(nb, prof) for nb in REFERENCE for prof in PROFILES_ORDER]
T1 = "02_table1_gaussian_denoising"


def test_the_reference_covers_every_notebook_and_profile():
    assert set(REFERENCE) == set(SETTINGS) == set(PROFILES)
    assert all(set(REFERENCE[nb]) == set(PROFILES_ORDER) == set(PROFILES[nb]) for nb in REFERENCE)


@pytest.mark.parametrize("notebook, profile", CASES)
def test_settings_equal_the_dict_they_replace_field_for_field(notebook, profile):
    p = resolve(notebook, profile)
    assert isinstance(p, SETTINGS[notebook])
    want = REFERENCE[notebook][profile]
    assert {k: repr(getattr(p, k)) for k in want} == want
    assert {k: getattr(p, k) for k in set(p.names()) - set(want)} == ADDED.get(notebook, {})


@pytest.mark.parametrize("cls", sorted(set(SETTINGS.values()), key=lambda c: c.__name__))
def test_every_settings_class_is_a_frozen_typed_dataclass(cls):
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen and issubclass(cls, NotebookSettings)
    hints = typing.get_type_hints(cls)
    assert set(hints) == set(cls.names()) and cls.names()[:2] == ("profile", "seed")


def test_shared_settings_live_in_the_base_classes():
    fit = set(settings.FitSettings.names())
    for nb in ("02_table1_gaussian_denoising", "03_table2_environmental_denoising", "04_table3_inpainting",
               "05_table4_separation", "11_blind_stopping"):
        assert fit <= set(SETTINGS[nb].names()), nb
    assert set(settings.WiassSettings.names()) < set(settings.WiassAttentionSettings.names())


def test_an_unknown_override_raises_at_once_with_the_valid_names_and_a_suggestion():
    for value in (3, None):  # None too: a misspelt name is never silently ignored
        with pytest.raises(SettingsError) as err:
            resolve(T1, "smoke", iteratons=value)
        text = str(err.value)
        assert "'iteratons'" in text and "did you mean 'iterations'" in text and "n_clips, oracle_cap" in text
    assert isinstance(err.value, DapError) and isinstance(err.value, KeyError)
    with pytest.raises(SettingsError, match="did you mean 'smoke'"):
        resolve(T1, "smok")
    with pytest.raises(SettingsError, match="did you mean '02_table1_gaussian_denoising'"):
        resolve("02_table1_gaussian", "smoke")


def test_reading_an_unknown_setting_raises_listing_the_valid_names():
    p = resolve(T1, "smoke")
    with pytest.raises(AttributeError, match="did you mean 'iterations'") as err:
        p.iteratons  # noqa: B018
    assert "datasets, designs, iterations" in str(err.value)
    assert getattr(p, "iteratons", 7) == 7 and hasattr(p, "iterations") and not hasattr(p, "iteratons")


def test_settings_are_read_one_way_as_attributes():
    p = resolve(T1, "quick")
    assert p.iterations == 150 and p.workers == 0
    with pytest.raises(TypeError):
        p["iterations"]  # noqa: B018  (no mapping interface: one way to read a setting)
    assert not isinstance(p, Mapping)
    assert p.replace(iterations=3).iterations == 3


def test_settings_are_frozen_and_replace_makes_a_checked_copy():
    p = resolve(T1, "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.precision = "fp32"
    q = p.replace(precision="auto", max_samples=16384)
    assert (q.precision, q.max_samples, p.precision, p.max_samples) == ("auto", 16384, "fp32", None)
    assert type(q) is type(p) and q.replace(max_samples=None).max_samples is None  # None is a value here
    assert p.replace(iterations=9).iterations == 9 and p.iterations == 2
    with pytest.raises(SettingsError, match="did you mean 'n_clips'"):
        p.replace(n_clip=3)


def test_overrides_are_converted_to_the_declared_types():
    p = resolve(T1, "smoke", designs="conv, dilated", datasets=["digits"], iterations="5", sigma=0,
                mismatched_istft="true", seed=None)
    assert p.designs == ("conv", "dilated") and p.datasets == ("digits",) and p.iterations == 5
    assert p.sigma == 0.0 and isinstance(p.sigma, float) and p.mismatched_istft is True
    assert p.seed == 0  # None keeps the profile's value
    s = resolve("11_blind_stopping", "smoke", snrs="0,5")
    assert s.snrs == (0.0, 5.0)
    e = resolve("09_explore_deep_priors", "smoke", widths=["16", "32", "64"])
    assert e.widths == (16, 32, 64)
    assert resolve("07_wiass_figure2_side_information", "quick", patience=5.0).patience == 5


@pytest.mark.parametrize("name, value", [("iterations", "ten"), ("iterations", 2.5), ("iterations", True),
                                         ("designs", 3), ("precision", 16), ("prior_opts", "small")])
def test_a_value_of_the_wrong_type_names_the_notebook_and_the_setting(name, value):
    nb = T1 if name != "prior_opts" else "04_table3_inpainting"
    with pytest.raises(SettingsTypeError) as err:
        resolve(nb, "smoke", **{name: value})
    assert nb in str(err.value) and f"'{name}'" in str(err.value) and isinstance(err.value, DapError)


def test_from_parameters_takes_the_settings_from_a_notebook_namespace():
    import math

    namespace = {"profile": "smoke", "iterations": 4, "n_clips": None, "source": "embedded", "data_root": None,
                 "math": math, "NAME": T1}  # what a notebook's globals() hold: only settings are read
    p = from_parameters(T1, namespace)
    assert p == resolve(T1, "smoke", iterations=4) and p.profile == "smoke" and p.n_clips == 1
    assert from_parameters(T1, {"profile": "quick", "lr": 1e-4}).lr == 1e-4  # any setting, via run_all.sh -p
    with pytest.raises(SettingsError, match="define no `profile`"):
        from_parameters(T1, {"iterations": 4})
    with pytest.raises(SettingsTypeError, match="'seed'"):
        from_parameters(T1, {"profile": "smoke", "seed": math})  # a clash with a non-setting is loud


def test_settings_pickle_and_copy():
    import copy
    import pickle

    p = resolve("05_table4_separation", "smoke")
    assert pickle.loads(pickle.dumps(p)) == p == copy.deepcopy(p)
    assert p.prior_opts is not PROFILES["05_table4_separation"]["smoke"]["prior_opts"]  # the table is not shared
