"""Result records: one model aligned to one target by one aligner, evaluated, as versioned JSON.

The record's shape is the JSON Schema ``leaderboard/result.schema.json`` (``SCHEMA_VERSION``);
a record is validated when it is written and when it is read, so neither a bug here nor an entry
from a stranger reaches the leaderboard unchecked. ``combination_key`` names what was run
(before the model is loaded); its hash is the record's ``id`` and part of its file name, so a
finished combination is found again on a rerun and two entries for one combination are
duplicates.

Two kinds of record, by the instrument's kind: index instruments (VSM 2013; ``build_record``:
indices, L1 per split) and distribution instruments (GlobalOpinionQA;
``build_distribution_record``: similarity = 1 - Jensen-Shannon distance on four blocks, training
and held-out questions under training and held-out wordings). Schema version 2 added the second;
version 1 records (index instruments only) are read as they are. Schema version 3 (measurement
v4): an index record's ``l1`` is order-balanced (the mean over a split's wordings of the L1 of
each wording's mean indices over its two scale orders), with a validation split, reference rows
(content-free and world-mean L1) and, for an alignment, the verdict ``aligned``; records of
versions 1 and 2 are read unchanged (their ``l1`` averages renderings).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Mapping

import jsonschema

from cultbench import __version__
from cultbench.atomic import write_text_atomic
from cultbench.errors import CultbenchError
from cultbench.profiles import target_key
from cultbench.metrics import rank_agreement

SCHEMA_VERSION = 3
SCHEMA_FILE = "result.schema.json"
LIBRARIES = ("torch", "transformers", "numpy", "scipy", "lm_eval", "peft")
SPLITS = ("train", "heldout")
# A distribution record's blocks: name -> (wording split, question split).
BLOCKS = {"train": ("train", "train"), "heldout_questions": ("train", "heldout"),
          "heldout_wordings": ("heldout", "train"), "heldout": ("heldout", "heldout")}


def is_distribution(record: Mapping) -> bool:
    """True for a record (or an instrument record) of a distribution instrument."""
    instrument = record.get("instrument", record)
    return isinstance(instrument, Mapping) and instrument.get("kind") == "distribution"


@lru_cache(maxsize=None)
def schema() -> dict:
    """The result schema, from the ``leaderboard`` data package."""
    return json.loads(resources.files("leaderboard").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validation_errors(record) -> list[str]:
    """Why ``record`` is not a valid result (empty when it is): schema errors, then consistency."""
    if not isinstance(record, dict):
        return [f"not a JSON object but {type(record).__name__}"]
    version = record.get("schema_version")
    if version is None and "splits" in record and "aligner" not in record:
        return ["this is the output of `cultbench evaluate`, not a result entry; result entries "
                "are written by `cultbench run` (one file per model x target x aligner x seed)"]
    if isinstance(version, int) and version > SCHEMA_VERSION:
        return [f"schema_version {version} is newer than this cultbench reads ({SCHEMA_VERSION}); upgrade cultbench"]
    errors = sorted(_validator().iter_errors(record), key=lambda e: (_where(e), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        return [f"{_where(best)}: {best.message[:300]}"] + [f"{_where(e)}: {e.message[:300]}" for e in errors
                                                             if e is not best][:4]
    out = []
    expected = entry_id(combination_key_of(record))
    if record["id"] != expected and record["id"] != entry_id(combination_key_of(record, model_files=False)):
        out.append(f"id {record['id']} does not match the entry's combination (expected {expected})")
    for split in (*SPLITS, "validation"):
        if split in record["splits"] and record["splits"][split]["variants"] != record["variants"].get(split):
            out.append(f"splits.{split}.variants differ from variants.{split}")
    if version == SCHEMA_VERSION and not is_distribution(record):
        out += [f"metrics.{s}: a schema {version} record has order-balanced L1s (l1_per_wording)"
                for s in SPLITS if "l1_per_wording" not in record["metrics"][s]]
    return out


def check_record(record, where: str = "result") -> dict:
    """``record`` itself when valid; a CultbenchError naming the first problem otherwise."""
    errors = validation_errors(record)
    if errors:
        raise CultbenchError(f"{where} is not a valid cultbench result: {errors[0]}")
    return record


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_record(path) -> dict:
    """A result read from ``path`` and validated (NaN and Infinity are refused)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except OSError as exc:
        raise CultbenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise CultbenchError(f"{path}: not valid JSON ({str(exc)[:200]})") from None
    return check_record(record, str(path))


def write_record(path, record: dict) -> Path:
    """Validate ``record`` and write it to ``path`` atomically (sorted keys, indented)."""
    check_record(record, str(path))
    write_text_atomic(path, json.dumps(record, sort_keys=True, indent=2, allow_nan=False) + "\n")
    return Path(path)


# -- combinations -----------------------------------------------------------------------------

def combination_key(*, model: str, model_dtype: str, instrument: Mapping, constants: Mapping, target: Mapping,
                    aligner: str, hyperparameters: Mapping, seed, budget, search_dtype, distance: str,
                    dimensions, variants: Mapping, model_sha256: str | None = None) -> dict:
    """What identifies one run: everything that changes its result, and nothing that does not.

    ``model_sha256`` is the content hash of a model on disk (``cultbench.models.model_sha256``;
    None for a Hugging Face id), so changed weights at the same path make another combination.
    ``seed``, ``budget`` and ``search_dtype`` are None for aligners that do not search.
    """
    return {"model": model, **({"model_sha256": model_sha256} if model_sha256 else {}), "model_dtype": model_dtype,
            "instrument": instrument_key(instrument),
            "constants": {k: float(v) for k, v in sorted(constants.items())},
            "target": {"name": target["name"], "source": target["source"]},
            "aligner": aligner, "hyperparameters": dict(hyperparameters), "seed": seed, "budget": budget,
            "search_dtype": search_dtype, "distance": distance, "dimensions": list(dimensions),
            "variants": {**{s: list(variants[s]) for s in (*SPLITS, "validation") if s in variants},
                         **({"version": int(variants["version"])} if "version" in variants else {})}}


def instrument_key(instrument: Mapping) -> dict:
    """The instrument's part of a combination key: name and version; for a distribution
    instrument also its data (sha256), question split rule and cleaning policy, which change what
    is fitted and scored (``instrument`` as in a record: ``DistributionInstrument.describe()``)."""
    key = {"name": instrument["name"], "version": instrument["version"]}
    if is_distribution(instrument):
        key.update(kind=instrument["kind"], data=instrument["data"]["sha256"], split=dict(instrument["split"]),
                   cleaning=dict(instrument["cleaning"]["policy"]))
    return key


def combination_key_of(record: Mapping, *, model_files: bool = True) -> dict:
    """The combination key of a record; ``model_files=False`` leaves the model's content hash out,
    as the keys of results written before cultbench keyed models by their files did."""
    a = record["aligner"]
    return combination_key(model=record["model"]["id"], model_dtype=record["model"]["dtype"],
                           model_sha256=record["model"]["file_sha256"] if model_files else None,
                           instrument=record["instrument"], constants=record["constants"],
                           target=record["target"], aligner=a["name"], hyperparameters=a["hyperparameters"],
                           seed=a["seed"], budget=a["budget"], search_dtype=a["search_dtype"],
                           distance=a["distance"], dimensions=a["dimensions"], variants=record["variants"])


def entry_id(key: Mapping) -> str:
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _slug(text, width: int = 40) -> str:
    text = str(text).rstrip("/\\")
    text = re.split(r"[/\\]", text)[-1] or "model"
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:width] or "x"


def entry_stem(key: Mapping, target_code: str) -> str:
    """File name (without .json) of a combination: readable parts, then the id."""
    parts = [_slug(key["model"]), _slug(target_code, 12), _slug(key["aligner"], 30)]
    if key["budget"] is not None:
        parts.append(f"b{key['budget']}")
    if key["seed"] is not None:
        parts.append(f"s{key['seed']}")
    return "_".join(parts + [entry_id(key)])


# -- building a record ------------------------------------------------------------------------

def library_versions() -> dict:
    out = {"cultbench": __version__}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_info(*, wall_time_s: float, align_time_s: float, evaluate_time_s: float, started: datetime,
             device: str, resumed: bool, command: str | None = None) -> dict:
    import torch  # only here: every other function of this module is light

    return {"wall_time_s": round(wall_time_s, 3), "align_time_s": round(align_time_s, 3),
            "evaluate_time_s": round(evaluate_time_s, 3), "resumed": resumed,
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "libraries": library_versions(),
            "command": command if command is not None else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}


def history_summary(alignment) -> dict | None:
    """The search's convergence curve (best fitness against evaluations) and how it stopped."""
    if alignment.search is None:
        return None
    curve = [{"evaluations": int(h["evaluations"]), "best": h.get("best"), "mean": h.get("mean")}
             for h in alignment.history]
    search = alignment.search
    return {"search_precision": search.get("precision"), "generations": search.get("generations", len(curve)),
            "stopped": search.get("stopped"), "best_fitness_search": search.get("best_fitness"),
            "invalid": int(search.get("invalid", 0)), "curve": curve,
            **({"selection": _selection_summary(search["selection"])} if search.get("selection") else {})}


def _selection_summary(selection: Mapping) -> dict:
    """How the returned candidate was picked: in what precision, how many finalists were
    re-scored, Spearman's rho between their search and full-precision fitness, winner's curse."""
    return {k: selection.get(k) for k in ("precision", "rescored", "spearman", "winners_curse")}


# What a record keeps of an evaluation's split and of its comparison with the target.
SPLIT_FIELDS = ("variants", "wordings", "indices", "indices_per_wording", "indices_per_variant", "expected_answers",
                "option_mass", "option_mass_per_item")
SPLIT_METRIC_FIELDS = ("l1", "l1_per_wording", "l1_per_variant", "l1_by_order", "signed_error", "naive_l1",
                       "content_free_l1", "world_mean_l1", "l1_over_content_free", "l1_over_world_mean")


def build_record(*, key: Mapping, alignment, evaluation: Mapping, model_info: Mapping, target: Mapping,
                 run: Mapping, engine: str = "cultbench-scorer", lm_eval: Mapping | None = None) -> dict:
    """The result record of one combination, from the alignment (``aligners.Alignment``) and
    ``cultbench.evaluation.evaluate_candidate``'s output for the one target."""
    name = target_key(target)
    splits, metrics = {}, {"precision": evaluation["precision"]}
    present = [s for s in (*SPLITS, "validation") if s in evaluation["splits"]]
    for split in present:
        scored = evaluation["splits"][split]
        versus = scored["targets"][name]
        dims = list(scored["indices"])
        splits[split] = {k: scored[k] for k in SPLIT_FIELDS if k in scored}
        metrics[split] = {k: versus[k] for k in SPLIT_METRIC_FIELDS if k in versus}
        metrics[split].update(option_mass=scored["option_mass"], dimension_rank_agreement=rank_agreement(
            [scored["indices"][d] for d in dims], [target["scores"][d] for d in dims]))
    if "alignment" in evaluation["splits"]["heldout"]["targets"][name]:
        metrics["alignment"] = evaluation["splits"]["heldout"]["targets"][name]["alignment"]
    if all("diagnostics" in evaluation["splits"][s] for s in present) and "diagnostics" in evaluation:
        metrics["diagnostics"] = {**{s: evaluation["splits"][s]["diagnostics"] for s in present},
                                  "all": evaluation["diagnostics"]}
    instrument = {**evaluation["instrument"], "dimensions": list(evaluation["splits"]["train"]["indices"])}
    record = _record(key, alignment, model_info, engine, instrument, dict(evaluation["constants"]), dict(target),
                     splits, metrics, run)
    if lm_eval is not None:
        record["lm_eval"] = dict(lm_eval)
    return record


def _record(key: Mapping, alignment, model_info: Mapping, engine: str, instrument: dict, constants: dict,
            target: dict, splits: dict, metrics: dict, run: Mapping) -> dict:
    """The parts of a record both kinds share, around their own instrument, target, splits and metrics."""
    soft = alignment.soft_prompt
    return {
        "schema_version": SCHEMA_VERSION, "id": entry_id(key), "engine": engine,
        "model": {k: model_info.get(k) for k in ("id", "kind", "revision", "file_sha256", "dtype", "parameters",
                                                 "hidden_size")},
        "instrument": instrument, "constants": constants, "target": target,
        "aligner": {"name": alignment.aligner, "hyperparameters": alignment.hyperparameters,
                    "seed": key["seed"], "budget": key["budget"], "evaluations": alignment.evaluations,
                    "search_dtype": key["search_dtype"], "distance": key["distance"],
                    "dimensions": list(key["dimensions"]), "fitness": alignment.fitness, "persona": alignment.persona,
                    "soft_prompt": None if soft is None else {"n_virtual": int(soft.shape[0]),
                                                              "hidden_size": int(soft.shape[1])}},
        "variants": dict(key["variants"]),
        "splits": splits, "metrics": metrics, "history": history_summary(alignment), "run": dict(run),
    }


def build_distribution_record(*, key: Mapping, alignment, evaluation: Mapping, model_info: Mapping, target: Mapping,
                              run: Mapping, engine: str = "cultbench-scorer") -> dict:
    """The result record of one combination on a distribution instrument, from the alignment and
    ``cultbench.distribution_evaluation.evaluate_distribution``'s output for the one target: the
    similarity on each block of ``BLOCKS`` and the diagnostics per wording split and overall."""
    name = target["name"]
    metrics = {"precision": evaluation["precision"]}
    for block, (wordings, questions) in BLOCKS.items():
        got = evaluation["splits"][wordings]["questions"][questions]
        t = got["targets"][name]
        sim = t["similarity"]
        metrics[block] = {"wordings": wordings, "questions": questions, "similarity": sim,
                          "jsd": None if sim is None else 1.0 - sim,
                          "similarity_per_variant": t["similarity_per_variant"],
                          "similarity_per_wording": t["similarity_per_wording"], "items": got["items"],
                          "items_asked": t["items_asked"], "rank": t["rank"],
                          "countries_ranked": got["countries_ranked"], "option_mass": got["option_mass"]}
    metrics["diagnostics"] = {**{s: evaluation["splits"][s]["diagnostics"] for s in SPLITS},
                              "all": evaluation["diagnostics"]}
    splits = {s: {k: evaluation["splits"][s][k] for k in ("variants", "option_mass", "questions", "answer_shares")}
              for s in SPLITS}
    return _record(key, alignment, model_info, engine, dict(evaluation["instrument"]), {}, dict(target), splits,
                   metrics, run)
