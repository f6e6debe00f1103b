"""Readable terminal summaries of what the commands compute; the full numbers stay in the JSON.

Each function takes the JSON-ready dict a command writes (or the pieces of it) and returns plain
text: per target, the published scores next to the model's indices dimension by dimension, the
L1 distance on each split with the naive model's beside it when it is known, the option mass, and
the validity verdict with a warning when the numbers mean little. Nothing here computes a score.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, metrics_for, primary_metric
from cultbench.profiles import target_key
from cultbench.prompts import REVERSED_SUFFIX
from cultbench.scoring.quantization import weights_label
from cultbench.runs.results import BLOCKS, is_distribution

SPLIT_LABELS = {"train": "train", "validation": "validation", "heldout": "held-out"}
# Below this mean option mass the model mostly does not answer in the format (used only when the
# result carries no validity verdict of its own).
LOW_OPTION_MASS = 0.5
BLOCK_LABELS = {"train": "train", "heldout_questions": "held-out questions",
                "heldout_wordings": "held-out wordings", "heldout": "both held out"}
SIMILARITY_NOTE = ("Similarity: 1 - Jensen-Shannon distance to the target's answer shares per question, averaged over "
                   "the questions it was asked, per prompt variant, then over the variants (higher is better). "
                   "train: training questions under training wordings (what the aligner fitted); held-out Q: "
                   "held-out questions under training wordings; held-out W: training questions under held-out "
                   "wordings; both held out: held-out questions under held-out wordings. A search's progress bar "
                   "shows the distance it minimises, jsd = 1 - similarity.")
L1_NOTE = ("L1: distance to the published scores of each wording's order-balanced indices (the mean of its "
           "in-order and reversed renderings), averaged over the split's wordings (lower is better); the rows "
           "show the mean balanced indices. content-free: every index = C; world mean: the mean profile of "
           "the source's countries.")


def _num(value, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ", text_columns: int = 1) -> list[str]:
    """Aligned columns: the first ``text_columns`` left-aligned, the numbers right-aligned."""
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) if k < text_columns else str(c).rjust(w) for k, (c, w) in enumerate(zip(r, widths))]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def target_title(target: Mapping) -> str:
    """ "U.S.A. (US, hofstede-2015)"; estimated sources say so."""
    ident = target.get("id") or target.get("iso2") or target.get("code")
    source = target.get("source", "")
    return (f"{target.get('name', ident)} ({ident}" + ("" if not source or "@" in str(ident) else f", {source}")
            + (", estimated" if target.get("estimated") else "") + ")")


def verdict_lines(diagnostics: Mapping | None, option_mass: float | None = None, scores: str = "indices") -> list[str]:
    """The validity verdict and its failed checks, or, without one, a warning on a low option mass;
    ``scores``: what the result's numbers are called in the warning."""
    if diagnostics and "interpretable" in diagnostics:
        failed = diagnostics.get("failed") or []
        names = [f if isinstance(f, str) else f.get("message") or f.get("name") or f.get("check") for f in failed]
        names += [f"{u} (not measurable)" for u in diagnostics.get("unchecked") or []]
        if diagnostics["interpretable"]:
            return ["Validity: interpretable (every diagnostic check passed)."]
        return [f"Validity: NOT interpretable; failed: {'; '.join(map(str, names)) or 'see the JSON'}.",
                f"Warning: the {scores} of an uninterpretable result say little about the model's culture."]
    if option_mass is not None and option_mass < LOW_OPTION_MASS:
        return [f"Warning: only {option_mass:.0%} of the next-token probability fell on the answer options; "
                "the model mostly does not answer in the format, and its indices mean little."]
    return []


def _beats(delta: float | None) -> str:
    if delta is None:
        return ""
    if delta < 0:
        return f"better than the naive model by {-delta:.1f}"
    if delta > 0:
        return f"WORSE than the naive model by {delta:.1f}"
    return "the same as the naive model"


def evaluation_text(result: Mapping) -> str:
    """``cultbench evaluate``'s summary (its JSON output as input)."""
    model = result.get("model") or {}
    applied = ("with the alignment " + str(result["alignment"]) if result.get("alignment")
               else "with the persona " + repr(result["persona"]) if result.get("persona") else "as it is")
    inst = result.get("instrument") or {}
    precision = result.get("precision", model.get("dtype", "?"))
    head = f"{model.get('id', 'model')} ({weights_label({**model, 'dtype': precision})}) {applied}"
    about = [f"{inst.get('name', '?')} v{inst.get('version', '?')}"]
    if result.get("wording"):
        about.append(f"wording v{result['wording']['version']}")
    if result.get("constants"):
        cs = set(result["constants"].values())
        about.append("C = " + (f"{cs.pop():g} on every dimension" if len(cs) == 1 else
                               ", ".join(f"{k.upper()} {v:g}" for k, v in result["constants"].items())))
    if result.get("engine"):
        about.append(f"engine {result['engine']}")
    lines = [head, " · ".join(about)] + [f"Warning: {w}" for w in result.get("warnings") or []]
    splits = result.get("splits") or {}
    masses = {s: v.get("option_mass") for s, v in splits.items()}
    if any(m is not None for m in masses.values()):
        lines.append("Option mass (probability on the answer options): "
                     + ", ".join(f"{SPLIT_LABELS.get(s, s)} {m:.2f}" for s, m in masses.items() if m is not None))
    lines += verdict_lines(result.get("diagnostics"), min((m for m in masses.values() if m is not None),
                                                          default=None))
    keys = list(dict.fromkeys(k for v in splits.values() for k in v.get("targets", {})))
    for key in keys:
        per_split = {s: v["targets"][key] for s, v in splits.items() if key in v.get("targets", {})}
        first = next(iter(per_split.values()))
        lines += ["", target_title({"id": key, **first})]
        dims = list(next(iter(splits.values())).get("indices") or {})
        scores = first.get("scores") or {}
        if dims:
            rows = [["published"] + [_num(scores.get(d), "g") if d in scores else "–" for d in dims]]
            rows += [[SPLIT_LABELS.get(s, s)] + [_num(splits[s]["indices"].get(d)) for d in dims] for s in per_split]
            lines += _table([""] + [d.upper() for d in dims], rows)
        lines += _primary_lines(per_split)
        if (per_split.get("heldout") or {}).get("alignment"):
            lines.append(aligned_line(per_split["heldout"]["alignment"]))
    if keys:
        lines += ["", L1_NOTE]
    return "\n".join(lines) + "\n"


def aligned_line(alignment: Mapping) -> str:
    """The verdict "aligned" with directedness, mirror and the failed checks."""
    def num(v):
        return "–" if v is None else f"{v:+.2f}"

    text = (f"  Aligned: {'yes' if alignment['aligned'] else 'NO'} (held out: directedness "
            f"{num(alignment.get('directedness'))}, mirror {num(alignment.get('mirror'))}")
    failed = alignment.get("failed") or []
    return text + (f"; failed: {', '.join(failed)})" if failed else ")")


def _primary_lines(per_split: Mapping[str, Mapping]) -> list[str]:
    """One target's primary metric (``cultbench.evaluation.metrics``) per split, with the naive model's beside
    it, the references (content-free and world-mean L1) and the renderings' L1 by scale order."""
    metric, lines = primary_metric(INDEX), []
    for s, t in per_split.items():
        if metric.name not in t:
            continue
        wordings = len(t.get(f"{metric.name}_per_wording") or {})
        n = wordings or len(t.get(f"{metric.name}_per_variant") or {})
        unit = ("wording" if wordings else "variant") + ("s" if n != 1 else "")
        text = (f"  {metric.label} {SPLIT_LABELS.get(s, s)}: {t[metric.name]:{metric.fmt}}"
                + (f" (mean of {n} {unit})" if n else ""))
        if t.get(f"naive_{metric.name}") is not None:
            text += f"; naive model {t[f'naive_{metric.name}']:{metric.fmt}}: {_beats(t.get('delta_vs_naive'))}"
        refs = [f"{name} {t[key]:{metric.fmt}}" for key, name in (("content_free_l1", "content-free"),
                                                                    ("world_mean_l1", "world mean"))
                if t.get(key) is not None]
        if refs:
            text += "; " + ", ".join(refs)
        by_order = t.get("l1_by_order") or {}
        if wordings and len(by_order) == 2:
            text += f" (renderings: in order {by_order['ascending']:.1f}, reversed {by_order['descending']:.1f})"
        lines.append(text)
    return lines


def alignment_text(alignment, naive: Mapping | None, output, distance: str, variants: Sequence[str]) -> str:
    """``cultbench align``'s summary: the aligned candidate's fitness next to the naive model's on the
    same training variants, both in full precision (``naive``: ``aligners.base.final_result``'s dict,
    None when the aligner is the naive model)."""
    target = alignment.target
    dims = list(alignment.indices)
    scores = target.get("scores") or {}
    lines = [f"{alignment.aligner} for {target_title({'id': target_key(target), **target})}: "
             f"{alignment.evaluations} candidate evaluations",
             f"Fitness ({distance} of each wording's order-balanced indices, averaged over the wordings of the "
             f"{len(variants)} renderings the aligner saw: "
             f"{', '.join(variants)}; full precision, lower is better):",
             f"  {alignment.aligner} {alignment.fitness:.1f}"]
    if naive is not None:
        delta = alignment.fitness - naive["fitness"]
        lines[-1] += f"   naive model {naive['fitness']:.1f}: {_beats(delta)}"
    rows = [["published"] + [_num(scores.get(d), "g") if d in scores else "–" for d in dims],
            [alignment.aligner] + [_num(alignment.indices[d]) for d in dims]]
    if naive is not None:
        rows.append(["naive"] + [_num(naive["indices"][d]) for d in dims])
    lines += _table([""] + [d.upper() for d in dims], rows)
    mass = alignment.result.get("option_mass")
    if mass is not None:
        lines.append(f"Option mass: {alignment.aligner} {mass:.2f}"
                     + ("" if naive is None or naive.get("option_mass") is None else f", naive {naive['option_mass']:.2f}"))
    lines += verdict_lines(alignment.result.get("diagnostics"), mass)
    search = alignment.search or {}
    if search.get("selection"):
        lines += selection_lines(alignment.aligner, search.get("precision"), search["selection"], distance)
    if search.get("validation"):
        lines.append(validation_line(search["validation"], search.get("selection"), distance))
    lines.append(f"Held-out variants, with the naive model beside it: cultbench evaluate --target "
                 f"{target_key(target)} --alignment {output}")
    return "\n".join(lines) + "\n"


def validation_line(validation: Mapping, selection: Mapping | None, distance: str = "l1") -> str:
    """The returned candidate's distance on the validation wordings, and whether it chose it (a
    search's finalists, prompt tuning's validated steps) or is a report."""
    wordings = list(dict.fromkeys(v.removesuffix(REVERSED_SUFFIX) for v in validation.get("variants") or []))
    value = validation.get("fitness")
    text = f"Validation ({', '.join(wordings)}, both orders): {distance} {'–' if value is None else f'{value:.1f}'}"
    if validation.get("select_by") != "validation":
        return text + " (a report: the training fitness chose the candidate)"
    if validation.get("step") is not None:
        return text + f", the lowest of {validation['evaluations']} validated steps (step {validation['step']} kept)"
    return text + f", the lowest of the {len((selection or {}).get('finalists') or [])} finalists there"


def selection_lines(label: str, search_precision: str | None, selection: Mapping, distance: str = "l1") -> list[str]:
    """What a reduced-precision search's pick cost, where the user reads the result: its winner's
    curse and how its finalists' search and full-precision rankings agreed (empty for a search in
    the reported precision, whose fitness is the reported one)."""
    if not selection.get("rescored"):
        return []
    exact, curse, rho = selection.get("precision"), selection.get("winners_curse"), selection.get("spearman")
    text = (f"{label}: searched in {search_precision}; its {selection['rescored']} best candidates were re-scored "
            f"in {exact} and the {exact} best returned. Winner's curse {_num(curse, '+.2f')} {distance} (the pick's "
            f"{exact} fitness minus its {search_precision} fitness); Spearman rho between the finalists' "
            f"{search_precision} and {exact} fitness {_num(rho, '+.2f')}")
    return [text + (" (the search's ranking is not to be trusted)." if rho is not None and rho < 0.5 else ".")]


def scores_text(scored: Mapping, published: Mapping[str, Mapping] | None = None) -> str:
    """``cultbench score``'s summary: per group, respondents and indices, and the published scores of
    the group's country where the group names one (``published``: group -> profile dict)."""
    published = published or {}
    cs = set(scored["constants"].values())
    lines = [f"{scored['instrument']} v{scored['version']} · {scored['source']} · C = "
             + (f"{cs.pop():g} on every dimension" if len(cs) == 1 else
                ", ".join(f"{k.upper()} {v:g}" for k, v in scored["constants"].items()))]
    groups = scored["groups"]
    dims = list(next(iter(groups.values()))["indices"]) if groups else []
    rows = []
    for name, g in groups.items():
        rows.append([f"{name} (n={g['n']})"] + [_num(g["indices"][d]) for d in dims])
        if name in published:
            p = published[name]
            rows.append([f"  published {target_title(p)}"]
                        + [_num(p["scores"].get(d), "g") if d in p["scores"] else "–" for d in dims])
    lines += _table(["group"] + [d.upper() for d in dims], rows, indent="")
    missing = [n for n, g in groups.items() if any(v is None for v in g["indices"].values())]
    if missing:
        lines.append(f"– : an index item has no answer in {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def result_headline(record: Mapping) -> str:
    """One result's numbers in a line: L1 per split, or a distribution instrument's similarity per block."""
    m = record["metrics"]
    if is_distribution(record):
        metric = primary_metric(DISTRIBUTION)
        return f"{metric.name} " + ", ".join(f"{BLOCK_LABELS[b]} {_num(m[b][metric.name], metric.fmt)}" for b in BLOCKS)
    metric = primary_metric(INDEX)
    return (f"{metric.label} train {m['train'][metric.name]:{metric.fmt}}, "
            f"held-out {m['heldout'][metric.name]:{metric.fmt}}")


def _ident(record: Mapping) -> str:
    """A result's target as the run summary names it."""
    return record["target"]["name"] if is_distribution(record) else target_key(record["target"])


def _run_table(records: Sequence[Mapping], columns: Mapping[str, str], kind: str) -> list[str]:
    """One line per result: the kind's primary metric on each of ``columns`` (metrics key ->
    header) and its difference to the naive model's result for the same model and target (when
    there is one), then the kind's metrics marked ``terminal`` (held out), option mass and verdict."""
    primary = primary_metric(kind)
    metric, spec = primary.name, primary.fmt
    extra = [m for m in metrics_for(kind) if m.terminal and not m.primary and not m.per_dimension]
    ident = _ident

    naive = {(r["model"]["id"], ident(r)): r["metrics"] for r in records if r["aligner"]["name"] == "naive"}
    rows = []
    for r in records:
        key = ident(r)
        base = naive.get((r["model"]["id"], key))
        cells = [key, r["aligner"]["name"], "–" if r["aligner"]["seed"] is None else str(r["aligner"]["seed"])]
        for s in columns:
            value = r["metrics"][s][metric]
            cells.append(_num(value, spec))
            cells.append("–" if base is None or r["aligner"]["name"] == "naive" or value is None
                         or base[s][metric] is None else f"{value - base[s][metric]:+{spec}}")
        cells += [_num(r["metrics"]["heldout"].get(m.name), m.fmt) for m in extra]
        cells.append(_num(r["metrics"]["heldout"]["option_mass"], ".2f"))
        verdict = ((r["metrics"].get("diagnostics") or {}).get("all") or {}).get("interpretable")
        cells.append("–" if verdict is None else "yes" if verdict else "NO")
        aligned = (r["metrics"]["heldout"].get("alignment") or {}).get("aligned")
        cells.append("–" if aligned is None else "yes" if aligned else "no")
        rows.append(cells)
    header = ["target", "aligner", "seed"] + [h for c in columns.values() for h in (c, "Δ naive")]
    header += [f"{m.label} held-out" for m in extra]
    return _table(header + ["option mass", "interpretable", "aligned"], rows, indent="", text_columns=2)


def run_text(records: Sequence[Mapping]) -> str:
    """``cultbench run``'s summary: one line per result, L1 on each split (a distribution instrument:
    similarity on each block, in a table of its own) and its difference to the naive model's."""
    index = [r for r in records if not is_distribution(r)]
    opinions = [r for r in records if is_distribution(r)]
    lines = []
    if index:
        label = primary_metric(INDEX).label
        lines += _run_table(index, {"train": f"{label} train", "heldout": f"{label} held-out"}, INDEX)
        lines.append("Δ naive: L1 minus the naive model's (negative: closer to the target). " + L1_NOTE)
    if opinions:
        lines += _run_table(opinions, {"train": "sim. train", "heldout_questions": "held-out Q",
                                       "heldout_wordings": "held-out W", "heldout": "both held out"},
                            DISTRIBUTION)
        lines.append("Δ naive: similarity minus the naive model's (positive: closer to the target). " + SIMILARITY_NOTE)
    lines += [f"Model: {m}" for m in dict.fromkeys(f"{r['model']['id']} ({weights_label(r['model'])})" for r in records)]
    for r in records:
        label = f"{r['aligner']['name']} ({_ident(r)}" + ("" if r["aligner"]["seed"] is None else
                                                            f", seed {r['aligner']['seed']}") + ")"
        selection = (r.get("history") or {}).get("selection")
        if selection:
            lines += selection_lines(label, r["history"]["search_precision"], selection, r["aligner"]["distance"])
        if r["run"].get("alignment_dir"):
            lines.append(f"{label}: alignment in {r['run']['alignment_dir']}")
    verdicts = [((r["metrics"].get("diagnostics") or {}).get("all") or {}).get("interpretable") for r in records]
    if any(v is False for v in verdicts):
        lines.append("Warning: the validity diagnostics say some of these scores mean little (interpretable: NO); "
                     "see each result's metrics.diagnostics and docs/diagnostics.md.")
    return "\n".join(lines) + "\n"
