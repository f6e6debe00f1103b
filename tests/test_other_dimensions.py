"""An index instrument with other dimensions than Hofstede's six is data: its YAML and a reference
file with a column per dimension. Nothing in the code lists the dimensions."""

import shutil

import numpy as np
import pytest
import yaml

from cultbench import profiles
from cultbench.errors import CultbenchError
from cultbench.evaluation.candidate import index_split, versus_target
from cultbench.instruments import INSTRUMENTS_DIR, load_instrument, resolve_target
from cultbench.evaluation.kinds import kind_of
from cultbench.publish.page import columns
from cultbench.prompts import get_variants


@pytest.fixture
def work_values_source(tmp_path, monkeypatch):
    """The bundled reference data plus a source "work-values" with two other dimensions."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("countries.tsv", "hofstede-2015.tsv"):
        shutil.copy(profiles.PROFILES_DIR / name, folder / name)
    (folder / "work-values.tsv").write_text("ctr\tcountry\taut\tsec\nUSA\tU.S.A.\t70\t30\nCHI\tChina\t20\t80\n")
    (folder / "sources.yaml").write_text(yaml.safe_dump({"sources": [
        {"id": "hofstede-2015", "title": "2015 matrix", "provenance": "test copy", "estimated": False,
         "file": "hofstede-2015.tsv"},
        {"id": "work-values", "title": "Work values", "provenance": "made up for a test", "estimated": False,
         "file": "work-values.tsv"}]}))
    caches = (profiles._sources, profiles._countries, profiles._index)
    monkeypatch.setattr(profiles, "PROFILES_DIR", folder)
    for cache in caches:
        cache.cache_clear()
    yield
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def test_an_instrument_with_other_dimensions_is_data_plus_references(work_values_source, tmp_path):
    spec = yaml.safe_load((INSTRUMENTS_DIR / "vsm2013.yaml").read_text())
    spec.update(name="workvalues", dimensions=[{"id": "aut", "name": "Autonomy", "terms": [[35, "q01", "q02"]]},
                                               {"id": "sec", "name": "Security", "terms": [[35, "q04", "q03"]]}])
    path = tmp_path / "workvalues.yaml"
    path.write_text(yaml.safe_dump(spec))
    inst = load_instrument(str(path))
    assert inst.dimension_ids == ["aut", "sec"] and kind_of(inst).name == "index"

    us = resolve_target(inst, "US", source="work-values")
    assert dict(us.scores) == {"aut": 70.0, "sec": 30.0}
    with pytest.raises(CultbenchError, match="U.S.A. has no AUT, SEC in source hofstede-2015.*work-values"):
        resolve_target(inst, "US")  # the default source has Hofstede's dimensions only

    wording = get_variants("train")[:2]  # one wording, in order and reversed
    assert wording[0].wording == wording[1].wording and wording[0].order != wording[1].order
    indices = np.array([[60.0, 40.0], [80.0, 40.0]])  # its two renderings
    versus = versus_target(us, index_split(us, indices, wording, inst.dimension_ids, np.full((2, 24), 0.5),
                                           {"aut": 70.0, "sec": 40.0}))
    assert versus["l1"] == pytest.approx(0.0 + 10.0)  # of the order-balanced indices (70, 40)
    assert versus["signed_error"] == pytest.approx({"aut": 0.0, "sec": 10.0})
    assert [c.header for c in columns(inst.dimension_ids) if c.id.startswith("err_")] == ["AUT error", "SEC error"]
