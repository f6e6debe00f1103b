"""aligners/registry.py: the registry, its checks and suggestions, and third-party aligners from
entry points (the plugin guide in docs/aligners.md runs as written)."""

import json
import re
import shlex
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import aligners
from aligners import Alignment, make_aligner, register_aligner
from aligners import registry
from cultbench.cli import main
from cultbench.errors import CultbenchError
from aligner_standin import PARAMS, SEARCHERS, synthetic_problem
from aligner_standin import clean_registry  # noqa: F401,F811  (fixtures)


def test_registry_lists_checks_and_suggests(clean_registry):
    assert set(SEARCHERS + ["naive", "icl", "icl-profile"]) <= set(aligners.available_aligners())
    with pytest.raises(CultbenchError, match="unknown aligner 'dee'.*Did you mean: de"):
        make_aligner("dee")
    with pytest.raises(TypeError, match="lacks config_class"):
        register_aligner("not-an-aligner")(type("Plain", (), {"align": lambda self: None}))
    with pytest.raises(ValueError, match="'de' is taken"):
        register_aligner("de")(type("Other", (aligners.SoftPromptAligner,), {}))
    with pytest.raises(ValueError, match="invalid aligner name"):
        register_aligner("Bad Name")
    result = CliRunner().invoke(main, ["aligners"])
    assert result.exit_code == 0
    width = max(map(len, aligners.available_aligners()))
    assert f"{'de':<{width}}  Soft prompt found by Differential Evolution (scipy), the paper's method." in result.output
    shown = CliRunner().invoke(main, ["aligners", "cmaes"])
    assert "sigma0 (float, default 1.0)" in shown.output and "bounds (tuple[float, float], default -3.0,3.0)" in shown.output


PLUGIN = textwrap.dedent('''
    """A third-party aligner: (1+1) random local search, an ask/tell optimiser in one file."""
    import numpy as np
    from aligners import SoftPromptAligner, SoftPromptConfig, param
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class HillConfig(SoftPromptConfig):
        step: float = param(0.2, "Step size of the perturbation.")

    class Hill:
        def __init__(self, d, bounds, popsize, step, seed):
            self.rng, self.bounds, self.popsize, self.step = np.random.default_rng(seed), bounds, popsize, step
            self.centre, self.best = np.zeros(d), np.inf
        def ask(self):
            x = self.centre + self.step * self.rng.standard_normal((self.popsize, len(self.centre)))
            return np.clip(x, *self.bounds)
        def tell(self, x, f):
            if f.min() < self.best:
                self.best, self.centre = f.min(), x[np.argmin(f)]
        def stop(self):
            return False

    class HillClimber(SoftPromptAligner):
        """Soft prompt found by a hill climber (third-party example)."""
        config_class = HillConfig
        def make_optimizer(self, space, seed):
            c = self.config
            return Hill(space.d, c.bounds, c.popsize, c.step, seed)
''')


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch, clean_registry):
    """A throwaway installed package: a module plus a dist-info folder declaring the entry point."""
    (tmp_path / "hill_aligner.py").write_text(PLUGIN)
    info = tmp_path / "hill_aligner-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hill-aligner\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cultbench.aligners]\nhill = hill_aligner:HillClimber\n"
                                           "broken = hill_aligner_missing:Nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(reload=True)
    yield tmp_path
    sys.modules.pop("hill_aligner", None)


def test_a_third_party_aligner_from_an_entry_point_runs_end_to_end(plugin_on_path, tmp_path):
    assert "hill" in aligners.available_aligners()
    result = make_aligner("hill", **PARAMS, step=0.3).align(synthetic_problem(), budget=240, seed=0)
    assert result.aligner == "hill" and result.hyperparameters["step"] == 0.3
    assert result.evaluations == 240 and result.fitness < result.history[0]["mean"] / 3
    assert Alignment.from_pretrained(result.save_pretrained(tmp_path / "hill")) == result
    listing = CliRunner().invoke(main, ["aligners"])
    assert re.search(r"^hill +Soft prompt found by a hill climber \(third-party example\)\.$", listing.output, re.M)
    assert re.search(r"^broken +\(plugin could not be loaded: ModuleNotFoundError", listing.output, re.M)
    with pytest.raises(CultbenchError, match="aligner plugin 'broken' could not be loaded"):
        make_aligner("broken")


def plugin_guide_blocks() -> dict[str, str]:
    """The plugin guide's blocks in docs/aligners.md, by the name in the comment above each."""
    text = (Path(__file__).parent.parent / "docs" / "aligners.md").read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- plugin-guide: (\S+) -->\n```\w+\n(.*?)```", text, re.S))


def test_the_plugin_guide_runs_as_written(tmp_path, monkeypatch, clean_registry, tiny_folder):
    """The guide's pyproject.toml and module, installed as pip installs them (the module on the
    path, a dist-info folder with the pyproject's entry points), then its `cultbench run` line."""
    blocks = plugin_guide_blocks()
    assert sorted(blocks) == ["fixed_persona_aligner.py", "pyproject.toml", "run"]
    project = tomllib.loads(blocks["pyproject.toml"])
    (module,) = project["tool"]["setuptools"]["py-modules"]
    (tmp_path / f"{module}.py").write_text(blocks["fixed_persona_aligner.py"])
    meta = project["project"]
    info = tmp_path / f"{module}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in meta["entry-points"].items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(reload=True)
    try:
        listing = CliRunner().invoke(main, ["aligners"])
        assert re.search(r"^fixed-persona +One fixed persona as the system prompt, whatever the target\.$",
                         listing.output, re.M), listing.output
        line = shlex.split(blocks["run"])
        assert line[:2] == ["cultbench", "run"]
        out = tmp_path / "results"
        result = CliRunner().invoke(main, line[1:] + ["--model", str(tiny_folder), "--output", str(out),
                                                      "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
        assert result.exit_code == 0, result.output
        (path,) = [p for p in out.glob("*.json") if "fixed-persona" in p.name]
        record = json.loads(path.read_text())
        persona = dict(p.split("=", 1) for p in line if p.startswith("persona="))["persona"]
        assert record["aligner"]["persona"] == persona and record["aligner"]["hyperparameters"] == {"persona": persona}
        saved = Alignment.from_pretrained(record["run"]["alignment_dir"])
        assert saved.aligner == "fixed-persona" and saved.persona == persona and saved.target["name"] == "U.S.A."
        assert f"alignment in {record['run']['alignment_dir']}" in result.output
    finally:
        sys.modules.pop(module, None)
