"""``python -m cultbench.harness ARGS``: lm-eval's command line (``lm_eval ARGS``) with the ``cultbench``
model registered and ``--include_path`` defaulting to the cultbench tasks.

    python -m cultbench.harness --model cultbench \\
        --model_args pretrained=smollm2-135m-instruct,alignment=runs/de-us-s0 \\
        --tasks vsm2013_us --apply_chat_template --output_path out/
"""

import sys

from cultbench.errors import CultbenchError
from cultbench.harness.engine import run_cli

try:
    run_cli(sys.argv[1:])
except CultbenchError as exc:
    print(f"Error: {exc}", file=sys.stderr)
    sys.exit(2)
