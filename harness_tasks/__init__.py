"""lm-evaluation-harness tasks of cultbench: YAML files and their hook module.

Pass this folder to lm-eval's ``--include_path`` (``cultbench harness-path`` prints it). The
task YAMLs are generated from the prompt variants and targets by ``cultbench.harness.taskfiles``.
"""

from pathlib import Path

TASKS_PATH = Path(__file__).resolve().parent
