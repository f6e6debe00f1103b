"""Runs: aligning one target, sweeps over models x targets x aligners x seeds (in this process or
on Ray), experiment files, result records and the terminal summaries."""
