"""The leaderboard rendered: ``LEADERBOARD.md`` and a static, self-contained ``index.html``."""

from cultbench.publish.page.html import (CONVERGENCE_NOTE, chart_colours, columns, convergence_svg, declared_colours,
                                         distribution_columns, fmt, fmt_stat, md_escape, md_table, render_html,
                                         render_markdown, summary_columns, target_label, verdict_text)

__all__ = ["CONVERGENCE_NOTE", "chart_colours", "columns", "convergence_svg", "declared_colours", "distribution_columns",
           "fmt", "fmt_stat", "md_escape", "md_table", "render_html", "render_markdown", "summary_columns",
           "target_label", "verdict_text"]
