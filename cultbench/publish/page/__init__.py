"""The leaderboard rendered: ``LEADERBOARD.md`` (``markdown``) and a static, self-contained
``index.html`` (``html``, with its style and script in ``static/``), from the same columns and
notes (``columns``)."""

from cultbench.columns import fmt, fmt_stat, target_label
from cultbench.publish.page.columns import columns, distribution_columns, summary_columns, verdict_text
from cultbench.publish.page.html import CONVERGENCE_NOTE, chart_colours, convergence_svg, declared_colours, render_html
from cultbench.publish.page.markdown import md_escape, md_table, render_markdown

__all__ = ["CONVERGENCE_NOTE", "chart_colours", "columns", "convergence_svg", "declared_colours", "distribution_columns",
           "fmt", "fmt_stat", "md_escape", "md_table", "render_html", "render_markdown", "summary_columns",
           "target_label", "verdict_text"]
