"""aligners/artifact.py: an alignment saved and loaded exactly; damaged or foreign folders
refused."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import aligners
from aligners import Alignment
from aligners.artifact import CONFIG_NAME, TENSORS_NAME
from cultbench.errors import CultbenchError
from cultbench.profiles import DIMENSIONS
from aligner_standin import HIDDEN
from aligner_standin import results_600  # noqa: F401,F811  (fixtures)


def test_artifact_round_trips_exactly(results_600, tmp_path):
    original = results_600["de"]
    folder = original.save_pretrained(tmp_path / "de-testland")
    assert sorted(p.name for p in folder.iterdir()) == ["alignment.json", "soft_prompt.safetensors"]
    text = (folder / "alignment.json").read_text()
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2) + "\n"
    assert record["cultbench_version"] == aligners.artifact.__version__ and record["format"] == 1
    assert record["aligner"] == "de" and record["seed"] == 0 and record["budget"] == 600
    assert record["hyperparameters"]["popsize"] == 12
    assert record["model"] == {"id": "stand-in", "revision": "r1", "file_sha256": None, "hidden_size": HIDDEN,
                               "dtype": None}
    assert record["problem"]["target"]["source"] == "synthetic"
    assert record["problem"]["constants"] == {d: 50.0 for d in DIMENSIONS}
    assert record["soft_prompt"]["parametrisation"]["form"] == "P0 + A z"
    assert record["soft_prompt"]["shape"] == [4, HIDDEN]
    loaded = Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": HIDDEN})
    assert loaded == original
    assert torch.equal(loaded.soft_prompt, original.soft_prompt) and np.array_equal(loaded.z, original.z)
    assert loaded.to_dict() == original.to_dict()
    # Saving again over the folder keeps it loadable and leaves no temporary files.
    loaded.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["alignment.json", "soft_prompt.safetensors"]
    assert Alignment.from_pretrained(folder) == original


def test_incompatible_or_damaged_artifacts_are_refused(results_600, tmp_path):
    folder = results_600["cmaes"].save_pretrained(tmp_path / "a")
    with pytest.raises(CultbenchError, match="soft prompt of hidden size 8, but model 'stand-in' has hidden size 16"):
        Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": 16})
    with pytest.raises(CultbenchError, match="made for model 'stand-in'.*does not fit model 'other'"):
        Alignment.from_pretrained(folder, model_info={"id": "other", "hidden_size": 8})
    with pytest.raises(CultbenchError, match="was made for revision r1, not r2"):
        Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": 8, "revision": "r2"})
    hashed = dataclasses.replace(results_600["cmaes"], model=dict(results_600["cmaes"].model, file_sha256="a" * 64))
    # The same file under another name is the same model; a different file is not.
    hashed.check_compatible({"id": "renamed.gguf", "file_sha256": "a" * 64, "hidden_size": 8})
    with pytest.raises(CultbenchError, match="the model file differs"):
        hashed.check_compatible({"id": "stand-in", "file_sha256": "b" * 64, "hidden_size": 8})
    blob = bytearray((folder / "soft_prompt.safetensors").read_bytes())
    blob[-1] ^= 1
    (folder / "soft_prompt.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CultbenchError, match="does not match the hash"):
        Alignment.from_pretrained(folder)
    with pytest.raises(CultbenchError, match="not an alignment folder"):
        Alignment.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors",
                                  "link.safetensors", "", 7])
def test_an_artifact_reads_no_file_outside_its_folder(results_600, tmp_path, name):
    folder = results_600["cmaes"].save_pretrained(tmp_path / "a")
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((folder / TENSORS_NAME).read_bytes())  # a valid tensor file, but not the artifact's
    (folder / "link.safetensors").symlink_to(outside)
    name = str(outside) if name == "ABSOLUTE" else name
    record = json.loads((folder / CONFIG_NAME).read_text())
    record["soft_prompt"]["file"] = name
    (folder / CONFIG_NAME).write_text(json.dumps(record))
    with pytest.raises(CultbenchError, match=r"soft_prompt\.file .*(must be a file name inside|leaves) the alignment folder"):
        Alignment.from_pretrained(folder)
    record["soft_prompt"]["file"] = "sub/../" + TENSORS_NAME  # inside after all: read
    (folder / CONFIG_NAME).write_text(json.dumps(record))
    (folder / "sub").mkdir()
    assert Alignment.from_pretrained(folder) == results_600["cmaes"]
