"""Result records: one model aligned to one target by one aligner, evaluated, as versioned JSON.

The record's shape is the JSON Schema ``leaderboard/result.schema.json`` (``SCHEMA_VERSION``);
a record is validated when it is written and when it is read, so neither a bug here nor an entry
from a stranger reaches the leaderboard unchecked. ``combination_key`` names what was run
(before the model is loaded); its hash is the record's ``id`` and part of its file name, so a
finished combination is found again on a rerun and two entries for one combination are
duplicates.

Two kinds of record, by the instrument's kind (``cultbench.evaluation.kinds``, which gives ``build_record``
each kind's splits and metrics): index instruments (VSM 2013: indices, L1 per split) and
distribution instruments (GlobalOpinionQA: similarity = 1 - Jensen-Shannon distance on four
blocks, training and held-out questions under training and held-out wordings). Schema version 2
added the second; version 1 records (index instruments only) are read as they are. Schema
version 3 (measurement v4): an index record's ``l1`` is order-balanced (the mean over a split's wordings of the L1 of
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
from typing import TYPE_CHECKING, Mapping

from cultbench import __version__
from cultbench.atomic import write_text_atomic
from cultbench.errors import CultbenchError
from cultbench.evaluation.kinds import BLOCKS, SPLITS, kind_of, metric_fields  # noqa: F401 (BLOCKS, metric_fields: re-exported)
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, METRICS, metrics_for

if TYPE_CHECKING:
    import jsonschema

SCHEMA_VERSION = 3
SCHEMA_FILE = "result.schema.json"
LIBRARIES = ("torch", "transformers", "numpy", "scipy", "lm_eval", "peft")


def is_distribution(record: Mapping) -> bool:
    """True for a record (or an instrument record) of a distribution instrument."""
    return kind_of(record).name == DISTRIBUTION


# The schema's definition of one split's (index) or one block's (distribution) metrics.
METRICS_DEFINITION = {INDEX: "split_metrics", DISTRIBUTION: "block_metrics"}


def schema_file() -> dict:
    """The committed result schema, from the ``leaderboard`` data package."""
    return json.loads(resources.files("leaderboard").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def with_registered_metrics(document: dict) -> dict:
    """``document`` (a result schema) with every registered metric's field(s) in its kinds'
    metrics definition (``cultbench.evaluation.metrics``), required where the metric says so. For the
    metrics the committed file already describes, this changes nothing (a test checks it)."""
    document = json.loads(json.dumps(document))
    for kind, name in METRICS_DEFINITION.items():
        definition = document["$defs"][name]
        for metric in metrics_for(kind):
            value = metric.schema_for(kind)
            fields = {metric.name: value}
            if metric.per_variant is not None:
                fields[f"{metric.name}_per_variant"] = {
                    "type": "object", "minProperties": 1, "propertyNames": {"$ref": "#/$defs/name"},
                    "additionalProperties": {k: v for k, v in value.items() if k != "description"}}
            for field_, fragment in fields.items():
                definition["properties"].setdefault(field_, fragment)
                if metric.required and field_ not in definition["required"]:
                    definition["required"].append(field_)
    return document


def schema() -> dict:
    """The result schema records are validated against: the committed file and the registered metrics."""
    return _schema(tuple(METRICS))


@lru_cache(maxsize=None)
def _schema(metric_names: tuple[str, ...]) -> dict:
    return with_registered_metrics(schema_file())


def _validator() -> "jsonschema.protocols.Validator":
    return _validator_for(tuple(METRICS))


@lru_cache(maxsize=None)
def _validator_for(metric_names: tuple[str, ...]) -> "jsonschema.protocols.Validator":
    import jsonschema  # here, not at the top: commands that never validate (`--help`) stay fast

    document = _schema(metric_names)
    cls = jsonschema.validators.validator_for(document)
    cls.check_schema(document)
    return cls(document)


def _where(error) -> str:
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
        from jsonschema.exceptions import best_match

        best = best_match(errors)
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

    ``model_sha256`` is the content hash of a model on disk (``cultbench.scoring.models.model_sha256``;
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
             device: str, resumed: bool, command: str | None = None, alignment_dir: str | None = None) -> dict:
    """The run's part of a record; ``alignment_dir``: the folder holding the alignment (what
    `cultbench evaluate --alignment` and `export-peft` take)."""
    import torch  # only here: every other function of this module is light

    return {"wall_time_s": round(wall_time_s, 3), "align_time_s": round(align_time_s, 3),
            "evaluate_time_s": round(evaluate_time_s, 3), "resumed": resumed,
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "libraries": library_versions(),
            "command": command if command is not None else " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            **({} if alignment_dir is None else {"alignment_dir": alignment_dir})}


def history_summary(alignment) -> dict | None:
    """The search's convergence curve (best fitness against evaluations; prompt tuning's validated
    steps also with their validation distance), how it stopped, and how the returned candidate was
    chosen (``selection``; ``validation``: its validation distance, where the run had a split)."""
    if alignment.search is None:
        return None
    curve = [{"evaluations": int(h["evaluations"]), "best": h.get("best"), "mean": h.get("mean"),
              **({"validation": h["validation"]} if "validation" in h else {})} for h in alignment.history]
    search = alignment.search
    return {"search_precision": search.get("precision"), "generations": search.get("generations", len(curve)),
            "stopped": search.get("stopped"), "best_fitness_search": search.get("best_fitness"),
            "invalid": int(search.get("invalid", 0)), "curve": curve,
            **({"selection": _selection_summary(search["selection"])} if search.get("selection") else {}),
            **({"validation": dict(search["validation"])} if search.get("validation") else {})}


def _selection_summary(selection: Mapping) -> dict:
    """How the returned candidate was picked: in what precision, how many finalists were
    re-scored, Spearman's rho between their search and full-precision fitness, winner's curse."""
    return {k: selection.get(k) for k in ("precision", "rescored", "spearman", "winners_curse")}


def build_record(*, key: Mapping, alignment, evaluation: Mapping, model_info: Mapping, target: Mapping,
                 run: Mapping, engine: str = "cultbench-scorer", lm_eval: Mapping | None = None) -> dict:
    """The result record of one combination, from the alignment (``aligners.Alignment``) and the
    evaluation of the candidate (``cultbench.evaluation.candidate.evaluate``) for the one target: what the
    instrument's kind keeps of each split and its metrics (``cultbench.evaluation.kinds``)."""
    instrument, constants, splits, metrics = kind_of(evaluation["instrument"]).record_parts(evaluation, target)
    record = _record(key, alignment, model_info, engine, instrument, constants, dict(target), splits, metrics, run)
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
                                                 "hidden_size", "quantization")},
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
