"""Leaderboard data, not code: the result schema (``result.schema.json``), the published result
entries (``entries/``), and the leaderboard built from them (``leaderboard.json``,
``LEADERBOARD.md``, ``index.html``; see docs/leaderboard.md)."""
