"""The study (``cultbench.publish.study.study``) as Markdown: what is present, the questions at a glance,
then the tables and tests they come from."""

from __future__ import annotations

from cultbench.evaluation.metrics import MIN_EFFECT
from cultbench.publish.page import CONVERGENCE_NOTE, fmt, fmt_stat, md_escape, md_table

SPLIT_TEXT = {"train": "train", "heldout": "held-out"}
ALPHA = 0.05  # the family-wise level a Holm-adjusted p is read against
DIAGNOSTIC_TEXT = {"option_mass": "option mass", "position_bias": "position bias", "reversal_tv": "reversal TV",
                   "item_sd": "item SD", "wording_sd": "wording SD", "interpretable": "interpretable (share)"}
TEST_HEADERS = ["Targets", "Seeds A/B", "Mean A", "Mean B", "Δ", "95% CI", "CI method", "p", "p (Holm)", "A lower"]
TESTS_NOTE = ("The unit is the target: each aligner's value is first averaged over its seeds within a target, then "
              "the targets are paired (an aligner that ignores the seed has one value per target). Δ = mean over "
              "targets of (A − B); 95% bootstrap CI of that mean (scipy.stats.bootstrap; the CI method column says "
              "which method gave it); p: two-sided exact sign-flip permutation test over the targets; p (Holm): "
              "adjusted within the family named; A lower: share of targets where A's value is lower. The tests say "
              "whether a difference holds over these countries, not over countries in general.")


CONTENT_FREE_NOTE = ("the mean over targets of the L1 minus the L1 of a respondent who answers C to every item "
                     "(every index = C; negative: closer to the target), and the targets where it is below by at "
                     f"least the minimum effect of the verdict aligned ({MIN_EFFECT:.0%} of the content-free L1)")


def _base(label: str) -> str:
    return label.split(" (")[0].split(" [")[0]


def _stat_text(s: dict, spec: str = ".1f") -> str:
    """"mean ± sd [min, max]" over several values, the value alone for one."""
    if s["n"] < 2:
        return fmt_stat(s, spec)
    return f"{fmt_stat(s, spec)} [{fmt(s['min'], spec)}, {fmt(s['max'], spec)}]"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(md_table(headers, rows))


def _ci(t: dict, spec: str = "+.1f") -> str:
    return f"[{fmt(t['ci_low'], spec)}, {fmt(t['ci_high'], spec)}]"


def _cells(t: dict, spec: str = ".1f") -> list[str]:
    signed = "+" + spec
    return [str(t["n_pairs"]), f"{t['seeds_a']}/{t['seeds_b']}", fmt(t["mean_a"], spec), fmt(t["mean_b"], spec),
            fmt(t["mean_difference"], signed), _ci(t, signed), md_escape(t["ci_method"]), fmt(t["p_value"], ".4f"),
            fmt(t["p_holm"], ".4f"), f"{t['a_better_fraction']:.0%}"]


def _brief(t: dict | None, spec: str = ".1f", lower: str = "lower") -> str:
    """One test in a sentence: Δ [CI] (method), p (Holm), A lower for k of n targets; or why it was skipped."""
    if t is None:
        return "no test"
    if "skipped" in t:
        return f"skipped ({t['skipped']})"
    holm = f", Holm {fmt(t['p_holm'], '.3g')}" if "p_holm" in t else ""
    return (f"Δ {fmt(t['mean_difference'], '+' + spec)} {_ci(t, '+' + spec)} ({t['ci_method']}), "
            f"p {fmt(t['p_value'], '.3g')}{holm}, {lower} for {round(t['a_better_fraction'] * t['n_pairs'])} of "
            f"{t['n_pairs']} targets")


def floor_text(tests: list[dict], family_of=lambda t: t.get("family", "this table")) -> str:
    """What the design can show: the smallest p per number of targets, and per family of tests the
    smallest Holm-adjusted p (tests in the family times the smallest p)."""
    floors = sorted({(t["n_pairs"], t["min_p_value"], t["p_method"]) for t in tests})
    per_n = "; ".join(f"{n} targets: 2/2^{n} = {fmt(p, '.4g')}" if method == "exact sign-flip"
                      else f"{n} targets: {fmt(p, '.4g')} ({method})" for n, p, method in floors)
    families: dict = {}
    for t in tests:
        families.setdefault(family_of(t), []).append(t)
    holm = "; ".join(f"{name}: {len(ts)} test{'s' if len(ts) != 1 else ''}, smallest Holm-adjusted p "
                     f"{fmt(min(1.0, len(ts) * min(t['min_p_value'] for t in ts)), '.4g')}"
                     for name, ts in families.items())
    return f"**Smallest p this design can give** ({per_n}); per family ({holm})."


def _skipped(items: list[dict]) -> list[str]:
    out = []
    for t in items:
        what = " and ".join(f"{k} {t[k]}" for k in ("split", "variant", "dimension", "change", "diagnostic")
                            if t.get(k))
        out.append(f"- {md_escape(t['a'])} against {md_escape(t['b'])}{' (' + md_escape(what) + ')' if what else ''}: "
                   f"skipped, {md_escape(t['skipped'])}.")
    return ["", "Tests not made:", ""] + out if out else []


def _missing_text(a: dict) -> str:
    if a["entries"] == 0 and a["expected_entries"] is None:
        return "no entries"
    if not a["in_grid"]:
        return "not in the grid"
    parts = [f"{t['target']} ({'budget ' + str(t['budget']) + ': ' if 'budget' in t else ''}"
             f"{'all' if t['all'] else 'seeds ' + ', '.join(map(str, t['seeds']))})" for t in a["missing"]]
    return "; ".join(parts) or "–"


def _range(pair) -> str:
    return "–" if pair is None else str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}–{pair[1]}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _budget_text(present: list[int], grid: list[int] | None) -> str:
    text = ", ".join(map(str, present)) or "–"
    return text + (" (not the grid's)" if grid and present and set(present) - set(grid) else "")


def coverage_part(m: dict) -> list[str]:
    c = m["coverage"]
    reference = (f"the grid of `{c['grid']}` ({_count(c['expected'], 'combination')}: "
                 f"{_count(len(c['targets']), 'target')}, seeds "
                 f"{', '.join(map(str, c['seeds'])) or '–'} for searching aligners"
                 + "".join(f"; {md_escape(a)} does not depend on the seed, so it runs with the first seed only"
                           for a in c.get("unseeded", [])) + ")" if c["grid"] else
                 f"no experiment file given, so against the {_count(len(c['targets']), 'target')} and the seeds "
                 f"({', '.join(map(str, c['seeds'])) or '–'}) these entries have")
    rows = [[md_escape(a["aligner"]), {True: "yes", False: "no", None: "–"}[a["searches"]], str(a["entries"]),
             fmt(a["expected_entries"], "d"), str(a["targets"]),
             _range(a["seeds_per_target"]), _budget_text(a["budgets"], c["budgets"]),
             md_escape(_missing_text(a)) + (f" (+{a['outside']} outside the grid)" if a["outside"] else "")]
            for a in c["aligners"]]
    return [f"### {md_escape(m['model'])}: what the entries hold\n",
            f"{_count(c['entries'], 'entry', 'entries')}, compared with {reference}. A test that needs a missing aligner or target "
            f"is skipped below, with the reason. Wording version of the entries: "
            f"{', '.join(map(str, c['wording_versions']))} (the variants file's now: {c['current_wording_version']})."
            + (f" Budget in the grid: {', '.join(map(str, c['budgets']))} evaluations." if c["budgets"] else "") + "\n",
            _table(["Aligner", "Searches", "Entries", "Expected", "Targets",
                    "Seeds per target and budget" if any(len(a["budgets"]) > 1 for a in c["aligners"])
                    else "Seeds per target", "Budgets", "Missing"], rows)]


def glance_part(m: dict) -> list[str]:
    """The study's questions, each answered by the numbers of the sections below."""
    l1 = m["tests"] + m["skipped"]

    def pair_lines(a: str, bs: tuple[str, ...]) -> list[str]:
        out = []
        for b in bs:
            found = [t for t in l1 if _base(t["a"]) == a and _base(t["b"]) == b]
            for t in found or [{"a": a, "b": b, "skipped": "no entries of either"}]:
                where = f", {SPLIT_TEXT[t['split']]}" if t.get("split") else ""
                out.append(f"  - {md_escape(t['a'])} − {md_escape(t['b'])}{where}: {_brief(t)}")
        return out

    lines = ["### The study's questions at a glance\n",
             "L1 differences (A − B; negative: A closer to the target), target as the unit; details below.\n",
             "- **Does DE beat the naive model and cultural prompting (icl, icl-profile)?**"]
    lines += pair_lines("de", ("naive", "icl", "icl-profile"))
    lines += ["- **Does it beat CMA-ES and random search at equal cost?**"] + pair_lines("de", ("cmaes", "random"))
    spent = [c for c in m["cost"] if c["budget"]]
    if spent:
        lines.append("  - Cost per run (budget unit: candidate evaluations, one soft prompt scored on every training "
                     "variant; a prompt-tuning step counts as its step_cost): " + "; ".join(
                         f"{md_escape(c['aligner'])} {fmt(c['evaluations']['mean'], '.0f')} evaluations, "
                         f"{fmt(c['wall_time_s']['mean'], '.0f')} s wall time" for c in spent) + "."
                     + _time_ratio(spent))
    lines += ["- **How far is it from gradient prompt tuning?**"] + pair_lines("de", ("prompt-tuning",))
    lines.append("- **Does the gain transfer to held-out wordings (held-out gain − training gain; positive: less "
                 "gain on unseen wordings)?**")
    if m["baseline"]:
        lines.append(f"  - {md_escape(m['baseline'])}")
    for g in m["transfer"]["gains"]:
        per_variant = [v for v in m["transfer"]["per_variant"] if v["a"] == g["aligner"] and v["b"] == g["naive"]]
        variants = ", ".join(f"{md_escape(v['variant'])}{' (reversed)' if v['scale'] == 'descending' else ''} "
                             f"{fmt(v['mean_difference'], '+.1f')}" for v in per_variant)
        lines.append(f"  - {md_escape(g['aligner'])}: gain train {_gain(g['train'])}, held-out {_gain(g['heldout'])}; "
                     f"held-out − train gain {_brief(g['gap'], lower='larger held-out improvement')}"
                     + (f"; per held-out variant: {variants}" if variants else ""))
    lines.append("- **Which dimensions move (held-out index against naive)?**")
    if m["baseline"]:
        lines.append(f"  - {md_escape(m['baseline'])}")
    for a in dict.fromkeys(t["a"] for t in m["dimensions"]["tests"]):
        moves = [t for t in m["dimensions"]["tests"] if t["a"] == a and t["change"] == "index"]
        closer = [t for t in m["dimensions"]["tests"] if t["a"] == a and t["change"] == "abs_error"
                  and t["p_holm"] < ALPHA]
        if not moves:
            continue
        big = max(moves, key=lambda t: abs(t["mean_difference"]))
        lines.append(f"  - {md_escape(a)}: largest mean move {big['dimension'].upper()} "
                     f"{fmt(big['mean_difference'], '+.1f')} {_ci(big)}; |error| changes with Holm p < {ALPHA:g}: "
                     + (", ".join(f"{t['dimension'].upper()} {fmt(t['mean_difference'], '+.1f')} {_ci(t)}"
                                  for t in closer) or "none"))
    lines.append("- **Does it move the model toward the target (held-out index change against naive regressed on "
                 "target − naive, over targets and dimensions; slope 1: all the way)?**")
    lines += direction_glance(m)
    lines.append("- **Does the validity verdict change under alignment?**")
    lines += diagnostics_glance(m)
    return lines


def _time_ratio(spent: list[dict]) -> str:
    """How unequal the alignment times per run are between the aligners that spend a budget."""
    timed = [c for c in spent if c["align_time_s"]["mean"]]
    if len(timed) < 2:
        return ""
    fast, slow = (f(timed, key=lambda c: c["align_time_s"]["mean"]) for f in (min, max))
    return (f" Alignment time per run from {fmt(fast['align_time_s']['mean'], '.0f')} s "
            f"({md_escape(fast['aligner'])}) "
            f"to {fmt(slow['align_time_s']['mean'], '.0f')} s ({md_escape(slow['aligner'])}), "
            f"{slow['align_time_s']['mean'] / fast['align_time_s']['mean']:.2f} times as long.")


def _gain(t: dict) -> str:
    return "–" if "skipped" in t else f"{fmt(t['mean_difference'], '+.1f')} {_ci(t)}"


def diagnostics_glance(m: dict) -> list[str]:
    d = m["diagnostics"]
    summaries = {s["aligner"]: s for s in d["per_aligner"]}
    if not any(s["entries"] for s in summaries.values()):
        return ["  - No entry has validity diagnostics (entries made before them): not answerable from these entries."]
    out = []
    for a, s in summaries.items():
        if not s["entries"]:
            out.append(f"  - {md_escape(a)}: no diagnostics.")
            continue
        change = {t["diagnostic"]: t for t in d["tests"] if t["a"] == a}
        text = (f"  - {md_escape(a)}: interpretable {s['interpretable_entries']} of "
                f"{_count(s['entries'], 'entry', 'entries')}; "
                f"position bias {fmt(s['position_bias']['mean'], '.2f')}, reversal TV "
                f"{fmt(s['reversal_tv']['mean'], '.2f')} (above {d['thresholds']['reversal_tv']:g} for "
                f"{s['reversal_above']} of {_count(s['targets'], 'target')})")
        if "reversal_tv" in change:
            text += (f"; against naive: position bias {_brief(change['position_bias'], '.3f')}; reversal TV "
                     f"{_brief(change['reversal_tv'], '.3f')}")
        text += "." + _positions_sentence(m, a, s)
        out.append(text)
    return out


def _variants_by_order(m: dict, a: str) -> dict[str, list[dict]]:
    """Aligner ``a``'s held-out per-variant tests against naive, by the shown scale's order."""
    variants = [v for v in m["transfer"]["per_variant"] if v["a"] == a and v["scale"]]
    return {o: [v for v in variants if v["scale"] == o] for o in ("ascending", "descending")}


def order_gains(m: dict, a: str) -> tuple[float, float] | None:
    """Aligner ``a``'s mean gain over naive on the in-order and on the reversed held-out variants (None
    when the variants' scale orders are not known)."""
    by_order = _variants_by_order(m, a)
    if not all(by_order.values()):
        return None
    up, down = (sum(v["mean_difference"] for v in vs) / len(vs) for vs in by_order.values())
    return up, down


def _positions_sentence(m: dict, a: str, s: dict) -> str:
    """Whether the aligner's held-out gain is a move along the shown scale: its gains on in-order and
    on reversed held-out variants (when the variants' scale orders are known)."""
    gains = order_gains(m, a)
    if gains is None:
        return ""
    up, down = gains
    by_order = _variants_by_order(m, a)
    sentence = f" Mean gain over naive on in-order held-out variants {up:+.1f}, on reversed ones {down:+.1f}"
    if up * down >= 0:
        return sentence + "."
    # opposite signs count only where each order has a variant whose gain has that sign at Holm p < ALPHA
    held = {o: any(v["p_holm"] < ALPHA and v["mean_difference"] * mean > 0 for v in by_order[o])
            for o, mean in (("ascending", up), ("descending", down))}
    if all(held.values()):
        return sentence + (f": opposite signs, each held by a per-variant test (Holm p < {ALPHA:g}): the prompt "
                           "moves answers along the shown scale's positions, not towards the target's content.")
    return sentence + (f": opposite signs, but not both held by a per-variant test (Holm p < {ALPHA:g}), so no "
                       "conclusion about answer positions.")


def _retained(g: dict) -> str:
    """The held-out gain as a share of the training gain, where there is a training gain (its CI below 0)."""
    train, heldout = g["train"], g["heldout"]
    if "skipped" in train or "skipped" in heldout or not train["ci_high"] < 0:
        return "–"
    return f"{heldout['mean_difference'] / train['mean_difference']:.0%}"


def gains_part(m: dict) -> list[str]:
    t = m["transfer"]
    if m["baseline"]:
        return ["\n### Transfer of the gain to held-out wordings\n", md_escape(m["baseline"]) + "."]
    out = ["\n### Transfer of the gain to held-out wordings\n",
           "Gain: the aligner's L1 minus the naive model's, per target (negative: closer than naive), mean over "
           "targets with its 95% bootstrap CI (where the paired comparisons above compare the aligner with naive, "
           "they test these gains). "
           "Held-out − train: per target, the held-out gain minus the training gain (positive: less of the gain "
           "carries over to wordings the aligner never saw), tested over targets (family: transfer).\n"]
    rows = [[md_escape(g["aligner"]), _gain(g["train"]), _gain(g["heldout"])]
            + (["–", md_escape(g["gap"]["skipped"])] + ["–"] * 7 if "skipped" in g["gap"] else
               [str(g["gap"]["n_pairs"]), fmt(g["gap"]["mean_difference"], "+.1f"), _ci(g["gap"]),
                md_escape(g["gap"]["ci_method"]), fmt(g["gap"]["p_value"], ".4f"), fmt(g["gap"]["p_holm"], ".4f"),
                f"{g['gap']['a_better_fraction']:.0%}", _retained(g)]) for g in t["gains"]]
    out.append(_table(["Aligner", "Gain train [CI]", "Gain held-out [CI]", "Targets", "Held-out − train", "95% CI",
                       "CI method", "p", "p (Holm)", "Larger held-out improvement", "Held-out / train gain"], rows))
    if t["per_variant"]:
        out += ["\nGain over naive on each held-out variant (family: per-variant); scale: the variant's answer "
                "order (reversed: from the last answer to the first), – where the entries' wording version is not "
                "the current one.\n",
                _table(["A", "B", "Variant", "Scale"] + TEST_HEADERS,
                       [[md_escape(v["a"]), md_escape(v["b"]), md_escape(v["variant"]),
                         {"ascending": "in order", "descending": "reversed", None: "–"}[v["scale"]]] + _cells(v)
                        for v in t["per_variant"]])]
    tests = t["gap_tests"] + t["per_variant"]
    if tests:
        out += ["", floor_text(tests, lambda x: "per-variant" if "variant" in x else "transfer")]
    return out + _skipped(t["skipped"])


def _dimension_cells(index: dict | None, error: dict | None) -> list[str]:
    """Targets, the index change and the |error| change of one dimension (each: Δ [CI], p, p Holm)."""
    made = [t for t in (index, error) if t is not None]
    cells = [str(max(t["n_pairs"] for t in made)) if made else "–"]
    for t in (index, error):
        if t is None:
            cells += ["–"] * (3 if t is index else 4)
            continue
        if t is error:
            cells.append(f"{fmt(t['mean_a'], '.1f')} / {fmt(t['mean_b'], '.1f')}")
        cells += [f"{fmt(t['mean_difference'], '+.1f')} {_ci(t)}", fmt(t["p_value"], ".4f"), fmt(t["p_holm"], ".4f")]
    methods = sorted({t["ci_method"] for t in made})
    return cells + [md_escape(", ".join(methods)) or "–"]


def dimensions_part(m: dict) -> list[str]:
    d = m["dimensions"]
    out = ["\n### Which dimensions move\n"]
    if m["baseline"]:
        return out + [md_escape(m["baseline"]) + "."]
    out.append("Per dimension, against the naive model: the change of the mean held-out index (A − naive; "
               "the direction the aligner moves the model) and the change of its absolute error to the target "
               "(negative: closer), each a mean over targets of the seed means, with a 95% bootstrap CI and a "
               "sign-flip p (family: dimensions, both kinds of change).\n")
    pairs = {}
    for t in d["tests"]:
        pairs.setdefault((t["a"], t["b"], t["dimension"]), {})[t["change"]] = t
    if pairs:
        out.append(_table(
            ["A", "B", "Dimension", "Targets", "Index change [CI]", "p", "p (Holm)", "\\|error\\| A / B",
             "\\|error\\| change [CI]", "p", "p (Holm)", "CI method"],
            [[md_escape(a), md_escape(b), dim.upper()] + _dimension_cells(c.get("index"), c.get("abs_error"))
             for (a, b, dim), c in pairs.items()]))
        out += ["", floor_text(d["tests"], lambda _: "dimensions")]
    return out + _skipped(d["skipped"])


# What the direction test read (``study.heldout_indices``): v4 records' balanced indices, or older records' mean.
INDICES_TEXT = {"balanced": "held-out balanced indices (the mean over the held-out wordings of each wording's "
                            "order-balanced indices)",
                "mean": "held-out mean indices over the renderings (entries before wording version 4 have no "
                        "balanced indices: their in-order and reversed renderings are not paired)"}
INDICES_SHORT = {"balanced": "held-out balanced indices", "mean": "held-out mean indices, not order-balanced"}
DIRECTION_NOTE = (
    "Per aligner against the naive model: per target (the unit; an aligner's seeds averaged first), its "
    "held-out index change (aligned − naive) and the way to the target (target − naive), one point per "
    "target and dimension, pooled; the least-squares slope of the change on the way (1: all the way to the "
    "target; 0: no movement toward it; negative: away from it) and the Pearson correlation. p: two-sided, "
    "from permuting which target's way goes with which target's change (the dimensions of a target stay "
    "together; the slope and the correlation give the same p); p (Holm): adjusted within the family "
    "direction. This measure does not depend on the constants C. Indices: ")


def _direction_p(t: dict) -> str:
    return f"{fmt(t['p_value'], '.4g')} ({md_escape(t['p_method'])}; smallest {fmt(t['min_p_value'], '.2g')})"


def direction_glance(m: dict) -> list[str]:
    """The direction test of each aligner in a sentence."""
    if m["baseline"]:
        return [f"  - {md_escape(m['baseline'])}"]
    return [f"  - {md_escape(t['a'])}: slope {fmt(t['slope'], '+.3f')}, r {fmt(t['pearson_r'], '+.2f')}, p "
            f"{fmt(t['p_value'], '.3g')}, Holm {fmt(t['p_holm'], '.3g')} ({t['n_targets']} targets; "
            f"{INDICES_SHORT.get(t['indices'], t['indices'] + ' indices')})" for t in m["direction"]["tests"]] + [
                f"  - {md_escape(t['a'])}: skipped ({md_escape(t['skipped'])})" for t in m["direction"]["skipped"]]


def direction_part(m: dict) -> list[str]:
    out = ["\n### Does the aligner move the model toward the target?\n"]
    if m["baseline"]:
        return out + [md_escape(m["baseline"]) + "."]
    d = m["direction"]
    kinds = dict.fromkeys(k for t in d["tests"] for k in t["indices"].split("/"))
    out.append(DIRECTION_NOTE + "; ".join(f"{k}, {INDICES_TEXT[k]}" for k in kinds) + ".\n" if kinds else
               DIRECTION_NOTE + "–.\n")
    if d["tests"]:
        out.append(_table(["A", "B", "Targets", "Points", "Seeds A", "Indices", "Slope", "Intercept", "Pearson r",
                           "p (target permutation)", "p (Holm)"],
                          [[md_escape(t["a"]), md_escape(t["b"]), str(t["n_targets"]), str(t["n_points"]),
                            str(t["seeds_a"]), t["indices"], fmt(t["slope"], "+.4f"), fmt(t["intercept"], "+.2f"),
                            fmt(t["pearson_r"], "+.3f"), _direction_p(t), fmt(t["p_holm"], ".4g")]
                           for t in d["tests"]]))
    return out + _skipped(d["skipped"])


def diagnostics_part(m: dict) -> list[str]:
    d = m["diagnostics"]
    out = ["\n### Validity diagnostics under alignment\n"]
    if not any(s["entries"] for s in d["per_aligner"]):
        return out + ["No entry of this model has validity diagnostics (`metrics.diagnostics`: entries made before "
                      "the diagnostics existed), so whether the verdict changes cannot be said from these entries."]
    out.append("Diagnostics over all evaluated variants (docs/diagnostics.md): mean over targets of each target's "
               "mean over seeds. Position bias above "
               f"{d['thresholds']['position_bias']:g} and reversal TV above {d['thresholds']['reversal_tv']:g}: "
               "targets whose mean exceeds the threshold (the model answers by the position of the options).\n")
    out.append(_table(
        ["Aligner", "Targets", "Interpretable entries", "Option mass", "Position bias", "Reversal TV", "Item SD",
         "Wording SD", "Position bias above", "Reversal TV above"],
        [[md_escape(s["aligner"]), str(s["targets"]), f"{s['interpretable_entries']}/{s['entries']}",
          fmt(s["option_mass"]["mean"], ".3f"), fmt(s["position_bias"]["mean"], ".3f"),
          fmt(s["reversal_tv"]["mean"], ".3f"), fmt(s["item_sd"]["mean"], ".3f"), fmt(s["wording_sd"]["mean"], ".2f"),
          f"{s['position_bias_above']}/{s['targets']}", f"{s['reversal_above']}/{s['targets']}"]
         for s in d["per_aligner"]]))
    if d["tests"]:
        out += ["\nChange against the naive model (A − naive; family: diagnostics).\n",
                _table(["A", "B", "Diagnostic"] + TEST_HEADERS,
                       [[md_escape(t["a"]), md_escape(t["b"]), DIAGNOSTIC_TEXT[t["diagnostic"]]] + _cells(t, ".3f")
                        for t in d["tests"]]),
                "", floor_text(d["tests"], lambda _: "diagnostics")]
    return out + _skipped(d["skipped"])


VERDICT_NOTE = ("The verdict `aligned` of each entry on the held-out wordings (`metrics.heldout.alignment`, "
                "docs/diagnostics.md, Protocol): its balanced L1 is below the naive model's and below the content-free "
                f"L1, each by at least {MIN_EFFECT:.0%} of the content-free L1, its change against naive points toward "
                "the target (directedness > 0) and keeps its sign when the scale is reversed (mirror > 0). Failed "
                "checks: how many entries failed each (an entry can fail several); the naive model, the reference, "
                "has no verdict.")


def verdicts_part(m: dict) -> list[str]:
    judged = [a for a in m["per_aligner"] if a["verdicts"]["entries"]]
    if not judged:
        return []
    return ["\n### The verdict aligned\n\n" + VERDICT_NOTE + "\n", _table(
        ["Aligner", "Entries", "Aligned", "Failed checks"],
        [[md_escape(a["aligner"]), str(a["verdicts"]["entries"]), str(a["verdicts"]["aligned"]),
          ", ".join(f"{md_escape(c)} {n}" for c, n in sorted(a["verdicts"]["failed"].items())) or "none"]
         for a in judged])]


def cost_part(m: dict) -> list[str]:
    return ["\n### Cost per run\n",
            "Budget and evaluations in candidate evaluations (one soft prompt scored on every training variant; "
            "a prompt-tuning step counts as its step_cost); generations: a search's populations or prompt "
            "tuning's steps; wall time of the whole run (alignment and the fp32 evaluation) and of the alignment "
            "alone, mean ± sd over runs [min, max].\n",
            _table(["Aligner", "Runs", "Budget", "Evaluations", "Generations / steps", "Search precision",
                    "Wall time (s)", "Align time (s)"],
                   [[md_escape(c["aligner"]), str(c["runs"]), ", ".join(map(str, c["budget"])) or "–",
                     _stat_text(c["evaluations"], ".0f"), "–" if c["generations"] is None else
                     _stat_text(c["generations"], ".0f") + "".join(f" (× {x:g} evaluations)" for x in c["step_cost"]),
                     ", ".join(c["search_precision"]) or "–",
                     _stat_text(c["wall_time_s"], ".0f"), _stat_text(c["align_time_s"], ".0f")] for c in m["cost"]]),
            _compute_text(m["compute"])]


def _compute_text(c: dict) -> str:
    threads = " or ".join(map(str, c["threads"])) or "an unrecorded number of"
    resumed = (f"; {c['resumed']} run{'s' if c['resumed'] != 1 else ''} resumed from a checkpoint, and "
               f"{'they record' if c['resumed'] != 1 else 'it records'} only the time after the resume"
               if c["resumed"] else "")
    return (f"\nAll {c['runs']} runs together: {c['wall_time_s']:.0f} s of wall time ({c['wall_time_s'] / 3600:.2f} h), "
            f"the sum over runs of one process each, at {threads} thread{'s' if c['threads'] != [1] else ''} per "
            f"run{resumed}.")


# What ``study.first_population`` measures (its definition, written once).
FIRST_POPULATION_NOTE = (
    "gain: the first generation's mean training fitness (L1 in the search's own precision, from its convergence "
    "curve: the fitness of a typical first-population candidate, since the entries keep no single starting point) "
    "minus the best fitness at the end of the run; the first population's part: that mean minus the first "
    "generation's best (its first popsize evaluations); share = part / gain (1: the first population found the "
    "whole gain, before any search step; 0: it found none of it)")


def first_population_part(m: dict) -> list[str]:
    """Per searching aligner: how much of its gain in training fitness its first population found."""
    rows = m.get("first_population") or []
    if not rows:
        return []
    out = ["\n### The first population's share of each search's gain\n",
           f"Per run, {FIRST_POPULATION_NOTE}. Each value is the mean over a target's seeds, then mean ± sd over "
           "targets [min, max]; pooled: the sum of the parts over the sum of the gains, over the runs with a gain.\n",
           _table(["Aligner", "Popsize", "Runs", "Targets with a share", "First-generation mean", "First-generation best",
                   "Final best", "Gain", "Share of the gain", "Pooled share"],
                  [[md_escape(a["aligner"]), ", ".join(map(str, a["popsize"])) or "–", str(a["runs"]),
                    str(a["targets"]), fmt(a["start"]["mean"], ".1f"), fmt(a["first_best"]["mean"], ".1f"),
                    fmt(a["final_best"]["mean"], ".1f"), fmt(a["gain"]["mean"], ".2f"),
                    "–" if a["share"]["n"] == 0 else _stat_text(a["share"], ".2f"), fmt(a["pooled_share"], ".2f")]
                   for a in rows])]
    notes = [f"- {md_escape(a['aligner'])}: {_count(w['runs'], 'run')} without a share: {md_escape(w['reason'])}."
             for a in rows for w in a["without_share"]]
    return out + (["", *notes] if notes else []) + first_generation_part(m)


def first_generation_part(m: dict) -> list[str]:
    """DE against the other population searches after their first generation and at the end."""
    g = m.get("first_generation") or {"tests": [], "skipped": []}
    if not g["tests"] and not g["skipped"]:
        return []
    out = ["\nDoes DE's difference from another population search come from its first population? DE against "
           "each other search of the same budget on the search's training fitness (its own precision, the best "
           "so far; lower is better), after DE's first generation (its popsize in evaluations; the other search's "
           "best after as many evaluations, whatever its own popsize) and at the end of the run. The unit is the "
           "target (seeds averaged first); p (Holm): adjusted within the family first generation.\n"]
    if g["tests"]:
        out += [_table(["Budget", "A", "B", "When"] + TEST_HEADERS,
                       [[str(t["budget"]), md_escape(t["a"]), md_escape(t["b"]),
                         "at the end" if t["evaluations"] is None else f"after {t['evaluations']} evaluations"]
                        + _cells(t, ".2f")
                        for t in g["tests"]]), "", floor_text(g["tests"])]
    return out + _skipped(g["skipped"])


def _ladder_cell(points: list[dict], split: str, targets: int) -> str:
    """One aligner's mean L1 at one budget (each setup's, when several share the budget)."""
    cells = []
    for p in points:
        text = fmt(p["l1"][split]["mean"], ".1f") + (f" ({_count(p['targets'], 'target')})"
                                                       if p["targets"] != targets else "")
        cells.append(text + (f" [{p['label'].rsplit(' [', 1)[1]}" if len(points) > 1 else ""))
    return "; ".join(cells) or "–"


def _crossing_text(c: dict) -> str:
    """Where A − B changes sign along the budgets, in a sentence."""
    diffs = ", ".join(f"{n}: {fmt(d, '+.1f')}" for n, d in c["differences"])
    where = f"{md_escape(c['a'])} − {md_escape(c['b'])}, {SPLIT_TEXT[c['split']]} L1 ({diffs})"
    if c["crossings"]:
        return f"- {where}: the curves cross " + " and ".join(f"between budgets {x} and {y}" for x, y in c["crossings"]) + "."
    if len(c["differences"]) < 2:
        return f"- {where}: tested at one budget only, so no crossing can be seen."
    sign = "below" if c["differences"][0][1] < 0 else "above"
    return f"- {where}: no crossing; {md_escape(c['a'])} stays {sign} at every budget tested."


def ladder_part(m: dict) -> list[str]:
    """The budgeted aligners along the budget ladder (absent below two budgets)."""
    ladder = m.get("ladder")
    if ladder is None:
        return []
    n = len(m["targets"])
    lines = ["\n### Along the budget ladder\n",
             f"Budgets (candidate evaluations): {', '.join(map(str, ladder['budgets']))}. Per aligner and budget: "
             "the mean over targets of each target's mean over seeds (a cell over fewer targets than the study's "
             f"{n} says how many). The held-out L1 is the primary metric on the held-out wordings (order-balanced for "
             "entries of wording version 4). DE at each budget against the baselines, which spend no budget, is in "
             "the paired comparisons below (primary family); setups two budgets apart are not paired there.\n"]
    names = list(dict.fromkeys(p["aligner"] for p in ladder["points"]))
    for split in ("heldout", "train"):
        lines += [f"{SPLIT_TEXT[split].capitalize()} L1:\n", _table(
            ["Aligner"] + [str(b) for b in ladder["budgets"]],
            [[md_escape(a)] + [md_escape(_ladder_cell([p for p in ladder["points"] if (p["aligner"], p["budget"]) == (a, b)],
                                                      split, n)) for b in ladder["budgets"]] for a in names]), ""]
    tests = [t for f in ladder["families"] for t in f["tests"]]
    lines.append(f"{md_escape(ladder['a'])} against each other budgeted aligner at the same budget, "
                 "L1 (A − B; negative: A closer to the target), both splits. " + TESTS_NOTE + " Each budget is "
                 "its own family: Holm adjusts within the tests of one budget (both splits), not across budgets.\n")
    if tests:
        lines += [_table(["Budget", "A", "B", "Split"] + TEST_HEADERS,
                         [[str(t["budget"]), md_escape(t["a"]), md_escape(t["b"]), SPLIT_TEXT[t["split"]]] + _cells(t)
                          for t in tests]), "", floor_text(tests)]
    else:
        lines.append(f"No budget has both {md_escape(ladder['a'])} and another budgeted aligner: no test is made.")
    lines += _skipped([t for f in ladder["families"] for t in f["skipped"]])
    if ladder["crossings"]:
        lines += ["", "Where the curves cross (the sign of the mean difference over the common targets, budget by "
                  "budget; a crossing is a change of sign, whatever the tests' p):", ""]
        lines += [_crossing_text(c) for c in ladder["crossings"]]
    return lines


AGAINST_NOTE = ("Both sets of entries are cut to the combinations they share (model files, instrument, constants, "
                "target, aligner, seed, budget, distance and dimensions; the wordings, hyper-parameters and search "
                "precision may differ) and each is studied on its own, so each row compares the same targets, "
                "each side with its own Holm families (the earlier tests are recomputed on these targets, not "
                "copied from its report). Tests: Δ [95% CI] (method), p, Holm, and for how many targets A is lower "
                "(the L1 differences: A closer to the target) or the held-out improvement is larger (the held-out "
                "gain − training gain, where positive means less of the gain carries over to unseen wordings). "
                "Content-free: " + CONTENT_FREE_NOTE + ". Gains over naive are L1 differences (negative: closer). "
                "Mirror (measurement v4, mean over targets): the correlation between the index change against "
                "naive under the in-order and under the reversed renderings of the same wordings (positive: a "
                "change of content, which keeps its sign; −1: a change of answer positions, which flips it).")
L1_OF_VERSION = ("L1 of each wording's order-balanced indices", "L1 averaged over the renderings, not order-balanced")


def _content_free_text(v: dict) -> str:
    return f"{fmt(v['mean'], '+.1f')}, below for {v['below']} of {_count(v['n'], 'target')}"


AGAINST_CELLS = {  # row["kind"] (study.against) -> how one side's value reads
    "l1_test": _brief,
    "gap_test": lambda v: _brief(v, lower="larger held-out improvement"),
    "direction": lambda v: (f"slope {fmt(v['slope'], '+.3f')}, r {fmt(v['pearson_r'], '+.2f')}, "
                            f"p {fmt(v['p_value'], '.3g')}, Holm {fmt(v['p_holm'], '.3g')} ({v['n_targets']} targets)"),
    "content_free": _content_free_text,
    "order_gains": lambda v: f"{fmt(v['in_order'], '+.1f')} / {fmt(v['reversed'], '+.1f')}",
    "mirror": lambda v: f"{fmt(v['mean'], '+.2f')} ({_count(v['n'], 'target')})",
}


def _against_cell(row: dict, side: str) -> str:
    v = row[side]
    return "–" if v is None else AGAINST_CELLS[row["kind"]](v)


def _versions_text(versions: list) -> str:
    named = [f"wording version {v} ({L1_OF_VERSION[0] if isinstance(v, int) and v >= 4 else L1_OF_VERSION[1]})"
             for v in versions]
    return ", ".join(named) or "–"


def against_part(doc: dict) -> list[str]:
    """The earlier study's headline answers beside this study's (``study.against``)."""
    a = doc.get("against")
    if a is None:
        return []
    where = f" (`{a['folder']}`)" if a.get("folder") else ""
    out = [f"\n### Against the earlier study{where}\n\n{AGAINST_NOTE} Entries used: earlier {a['kept']} of "
           f"{a['entries']}, now {a['now_kept']} of {a['now_entries']}."
           + (f" Earlier: {_versions_text(a['wording_versions']['earlier'])}; now: "
              f"{_versions_text(a['wording_versions']['now'])}." if "wording_versions" in a else "") + "\n"]
    if a.get("unmatched_models"):
        out.append("Models without a counterpart of the same label in the earlier study: "
                   + ", ".join(md_escape(m) for m in a["unmatched_models"]) + ".\n")
    if not a["models"]:
        return out + [f"No answer to compare: {md_escape(a.get('reason', 'no model in common'))}."]
    for m in a["models"]:
        out.append(f"{md_escape(m['model'])}:\n")
        out.append(_table(["Question", "A", "B", "Split", "Earlier", "Now"],
                          [[md_escape(r["question"]), md_escape(r["a"]), md_escape(r.get("b", "–")),
                            SPLIT_TEXT.get(r.get("split"), "–"), _against_cell(r, "earlier"), _against_cell(r, "now")]
                           for r in m["rows"]]))
    return out


def render_study_markdown(doc: dict, charts: dict[str, str] | None = None) -> str:
    """The study as Markdown; ``charts``: model -> {target label -> relative path of its SVG}."""
    parts = []
    for m in doc["models"]:
        first = m["per_aligner"][0]["variants"]
        n_train, n_heldout = len(first["train"]), len(first["heldout"])
        parts += coverage_part(m)
        parts += [""] + glance_part(m)
        parts.append(f"\n### {md_escape(m['model'])}: L1 to the target per target x aligner\n\n"
                     "Mean ± sd over seeds [min, max]; one value for aligners that ignore the seed. Train: the "
                     f"{n_train} variants the aligners were fitted on; held-out: the {n_heldout} they never saw. "
                     "Option mass: mean next-token probability on the five answer tokens (held-out variants).\n")
        parts.append(_table(
            ["Target", "Aligner", "Seeds", "Train L1", "Held-out L1", "Option mass"],
            [[md_escape(t["target"]), md_escape(t["aligner"]), str(t["n"]), _stat_text(t["l1"]["train"]),
              _stat_text(t["l1"]["heldout"]), fmt(t["option_mass"]["heldout"]["mean"], ".3f")] for t in m["table"]]))
        dims = list(m["per_aligner"][0]["abs_error"]["heldout"])
        parts.append(f"\n### Averaged over each aligner's targets (of {len(m['targets'])})\n\n"
                     "L1: mean over targets of each target's mean over seeds, ± sd over targets [min, max]. |error| per "
                     "dimension: absolute difference between the mean held-out index and the target's score, "
                     "averaged over targets. Held-out L1 − content-free: " + CONTENT_FREE_NOTE + "; with order-balanced "
                     "L1 (wording version 4), an aligner below for no target has shown nothing there that a "
                     "position-only answerer could not (older entries' L1 averages renderings, which a position-only "
                     "answerer scores above the content-free L1). An aligner with fewer targets than the others is averaged over its own, so "
                     "compare such rows through the paired comparisons, which pair targets.\n")
        parts.append(_table(
            ["Aligner", "Targets", "Train L1", "Held-out L1", "Held-out L1 − content-free", "Option mass train",
             "Option mass held-out"] + [f"\\|{d.upper()}\\| held-out" for d in dims],
            [[md_escape(a["aligner"]), str(a["targets"]), _stat_text(a["l1"]["train"]), _stat_text(a["l1"]["heldout"]),
              _content_free_text(a["content_free"]["heldout"]),
              fmt(a["option_mass"]["train"]["mean"], ".3f"), fmt(a["option_mass"]["heldout"]["mean"], ".3f")]
             + [fmt(a["abs_error"]["heldout"][d], ".1f") for d in dims] for a in m["per_aligner"]]))
        parts += cost_part(m)
        parts += first_population_part(m)
        parts += ladder_part(m)
        variants = list(dict.fromkeys(v for a in m["per_aligner"] for v in a["l1_per_variant"]))
        parts.append("\n### L1 per prompt variant\n\n"
                     f"Mean over targets of the mean over seeds; the first {n_train} variants are the training ones. "
                     "Spread: for each target, the largest minus the smallest variant's L1, averaged over the "
                     "targets [min, max over targets] (how much the wording alone moves one target's L1).\n")
        parts.append(_table(
            ["Aligner"] + [md_escape(v) for v in variants] + ["Spread"],
            [[md_escape(a["aligner"])] + [fmt(a["l1_per_variant"].get(v), ".1f") for v in variants]
             + [f"{fmt(a['variant_spread']['mean'], '.1f')} [{fmt(a['variant_spread']['min'], '.1f')}, "
                f"{fmt(a['variant_spread']['max'], '.1f')}]"]
             for a in m["per_aligner"]]))
        searches = [a for a in m["per_aligner"] if a["search_fitness"]]
        if searches:
            parts.append("\n### Search fitness against the full-precision re-score\n\n"
                         "Best training fitness found by each search in its own precision, and the same "
                         "candidate's training L1 re-scored in fp32 (mean ± sd over targets and seeds).\n")
            parts.append(_table(
                ["Aligner", "Search precision best", "fp32 re-score"],
                [[md_escape(a["aligner"]), _stat_text(a["search_fitness"]), _stat_text(a["fitness"])] for a in searches]))
        parts.append("\n### Held-out error per dimension\n\n"
                     "Mean held-out index minus the target's score (mean over seeds): positive, the model "
                     "scores the dimension higher than the target.\n")
        parts.append(_table(["Target", "Aligner"] + [d.upper() for d in dims],
                            [[md_escape(t["target"]), md_escape(t["aligner"])]
                             + [fmt(t["signed_error"]["heldout"][d], "+.1f") for d in dims] for t in m["table"]]))
        parts.append("\n### Paired comparisons\n\n" + TESTS_NOTE + " Families: primary, DE against the baselines, "
                     "the other searches and gradient prompt tuning (the paper's claim); secondary, the other "
                     "comparisons. L1 is A's and B's mean L1 on the split.\n")
        if m["tests"]:
            parts.append(floor_text(m["tests"]) + " With this few targets no test can reach a smaller p, whatever "
                         "the data; a bootstrap interval over so few targets is also rough (too narrow).\n")
            parts.append(_table(
                ["A", "B", "Split", "Family"] + TEST_HEADERS,
                [[md_escape(t["a"]), md_escape(t["b"]), t["split"], t["family"]] + _cells(t) for t in m["tests"]]))
        parts += _skipped(m["skipped"])
        parts += gains_part(m)
        parts += dimensions_part(m)
        parts += direction_part(m)
        parts += diagnostics_part(m)
        parts += verdicts_part(m)
        for target, path in (charts or {}).get(m["model"], {}).items():
            parts.append(f"\n![Convergence, {md_escape(target)}]({path})\n\n*{md_escape(target)}.* {CONVERGENCE_NOTE}")
        parts.append("")
    parts += against_part(doc)
    return "\n".join(parts).rstrip() + "\n"
