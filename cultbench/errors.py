"""The one exception type for user mistakes: the CLI prints its message and exits non-zero."""

import difflib


class CultbenchError(Exception):
    """A problem with the user's input (file, option, name), reported without a traceback."""


def did_you_mean(name: str, choices, n: int = 3) -> str:
    """' Did you mean: a, b?' for the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.5)
    if not close:
        lowered = {str(c).lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)]
    return f" Did you mean: {', '.join(close)}?" if close else ""
