"""aligners/config.py: hyper-parameters checked, named in errors, and read from strings."""

import json

import pytest

from aligners import available_aligners, get_aligner_class, make_aligner
from aligners.de import DEConfig
from cultbench.errors import CultbenchError


@pytest.mark.parametrize("params,message", [
    (dict(n_virtual=0), r"n_virtual=0 is out of range 1\.\.512"),
    (dict(n_virtual=513), r"n_virtual=513 is out of range"),
    (dict(d=0), r"d=0 is out of range"),
    (dict(popsize=4), r"popsize=4: this optimiser needs at least 5"),
    (dict(bounds="1,-1"), "LOW must be below HIGH"),
    (dict(strategy="best1binn"), "Did you mean: best1bin"),
    (dict(mutation=2.5), r"F must lie in \[0, 2\)"),
    (dict(popsiz=10), "unknown hyper-parameter 'popsiz'.*Did you mean: popsize"),
    (dict(n_virtual="four"), "n_virtual='four' is not an integer"),
    (dict(init_text="born in {place}"), "init_text may only use the field {country}"),
    (dict(projection_seed=-1), "projection_seed=-1: a seed is a whole number >= 0"),
])
def test_bad_hyperparameters_are_clear_errors(params, message):
    with pytest.raises(CultbenchError, match=message):
        make_aligner("de", **params)


def test_config_round_trip_and_string_values():
    config = DEConfig.from_dict({"popsize": "8", "bounds": "-2,2", "mutation": "0.6", "recombination": "1"})
    assert (config.popsize, config.bounds, config.mutation, config.recombination) == (8, (-2.0, 2.0), 0.6, 1.0)
    assert DEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert DEConfig(mutation=[0.4, 0.9]).mutation == (0.4, 0.9)
    assert make_aligner("cmaes", popsize=6).get_params()["popsize"] == 6


@pytest.mark.parametrize("name", sorted(available_aligners()))
def test_hyperparameter_errors_name_the_aligner_not_a_class(name):
    with pytest.raises(CultbenchError) as unknown:
        get_aligner_class(name).config_class.from_dict({"no_such_param": "1"})
    assert f"unknown hyper-parameter 'no_such_param' for aligner {name};" in str(unknown.value)
    assert "Config" not in str(unknown.value)
