"""lm-evaluation-harness commands: where the tasks are, lm-eval with the cultbench model, PEFT export.

lm-eval, torch and PEFT are imported inside the commands: they take seconds to import, and
``cultbench harness-path`` (used inside shell command lines) should answer at once.
"""

from __future__ import annotations

from pathlib import Path

import click

from cultbench.errors import CultbenchError


@click.command("harness-path")
def harness_path():
    """Print the folder of cultbench's lm-evaluation-harness tasks (for --include_path).

    \b
    Example:
      lm_eval --model hf --model_args "$(cultbench harness-model-args)" \\
        --include_path "$(cultbench harness-path)" --tasks vsm2013 --apply_chat_template
    """
    from harness_tasks import TASKS_PATH

    click.echo(str(TASKS_PATH))


@click.command("harness-model-args")
@click.argument("model", default="smollm2-135m-instruct")
@click.option("--dtype", default="float32", show_default=True, help="dtype for lm-eval to load the model in.")
def harness_model_args(model, dtype):
    """Print lm-eval --model_args for `--model hf` that load MODEL (a bundled alias, a .gguf file,
    a folder or a cached hub id) the way cultbench does.

    \b
    Example:
      lm_eval --model hf --model_args "$(cultbench harness-model-args smollm2-135m-instruct),peft=runs/de-us-s0-peft" \
        --include_path "$(cultbench harness-path)" --tasks vsm2013_us --apply_chat_template
    """
    from cultbench.scoring.models import locate_model, resolve_dtype

    where, gguf_file, _ = locate_model(model)
    resolve_dtype(dtype)
    if "," in where or "=" in where:
        raise CultbenchError(f"{where}: lm-eval's --model_args cannot hold a path with ',' or '='")
    click.echo(f"pretrained={where}" + (f",gguf_file={gguf_file}" if gguf_file else "") + f",dtype={dtype}")


@click.command("harness-eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("lm_eval_args", nargs=-1, type=click.UNPROCESSED)
def harness_eval(lm_eval_args):
    """Run lm-eval's command line with the `cultbench` model registered (same as
    `python -m cultbench.harness`). Every argument goes to lm-eval; --include_path defaults to
    the cultbench tasks. lm-eval's own options: `python -m cultbench.harness run --help`.

    \b
    Example:
      cultbench harness-eval --model cultbench \\
        --model_args pretrained=smollm2-135m-instruct,alignment=runs/de-us-s0 \\
        --tasks vsm2013_us --apply_chat_template --output_path out/
    """
    from cultbench.harness.engine import run_cli

    run_cli(lm_eval_args)


@click.command("export-peft")
@click.argument("alignment_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--base-model", default=None,
              help="base_model_name_or_path to record [default: where the alignment's model is on this machine "
                   "(a folder path for cultbench's aliases and GGUF files, else the hub id)].")
@click.option("--overwrite", is_flag=True, help="Replace the adapter files in an existing OUT_DIR.")
def export_peft_cmd(alignment_dir, out_dir, base_model, overwrite):
    """Write an alignment's soft prompt as a standard PEFT prompt-tuning adapter
    (adapter_config.json + adapter_model.safetensors), loadable with
    PeftModel.from_pretrained(base, OUT_DIR) and lm-eval's --model_args ...,peft=OUT_DIR.
    ALIGNMENT_DIR may also be given as its alignment.json. OUT_DIR/README.md says exactly how
    to load the base model and the adapter.

    \b
    Example:
      cultbench export-peft runs/de-us-s0 runs/de-us-s0-peft
    """
    from cultbench.cli.options import alignment_folder
    from cultbench.publish.peft_export import export_peft

    alignment_dir = alignment_folder(alignment_dir)
    if alignment_dir.resolve() == out_dir.resolve():
        raise CultbenchError("OUT_DIR must be another folder than ALIGNMENT_DIR")
    out = export_peft(alignment_dir, out_dir, base_model=base_model, overwrite=overwrite)
    click.echo(f"Wrote a PEFT prompt-tuning adapter to {out}", err=True)


COMMANDS = [harness_path, harness_model_args, harness_eval, export_peft_cmd]
