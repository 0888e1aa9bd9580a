"""Option decorators, value parsers and error handling shared by every command (click lives in cli/ alone)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

import click

from edgemed.core.errors import EdgemedError, OptionError

# Library errors name parameters in backticks (`sampling_rate_hz`); the CLI shows the flag that sets each.
FLAGS = {
    "force": "--force", "overwrite": "--overwrite", "out": "--out", "output": "-o",
    "sampling_rate_hz": "--sampling-rate",
    "trust_pickle": "--trust-pickle", "input_shape": "--input-shape", "dynamic_axes": "--dynamic-axis",
    "labels": "--labels", "records": "--records", "key": "--key", "device": "--device", "validation": "--validation",
    "calibration": "--calibration", "beats": "--beats", "streaming": "--streaming", "stream": "--stream",
    "chunk_seconds": "--chunk-seconds", "threads": "--threads", "backend": "--backend", "precision": "--precision",
    "exporter": "--exporter", "opset": "--opset", "engine": "--engine", "mode": "--mode", "max_drop": "--max-drop",
    "isa": "--isa", "data": "--data", "task": "--task", "leads": "--leads", "image_size": "--image-size",
    "accelerator": "--accelerator", "nproc": "--nproc", "recipe": "--recipe", "model": "--model", "tuned": "--tuned",
    "run": "--run", "json": "--json", "plot": "--plot", "torch": "--torch", "per_op": "--per-op", "sign": "--sign",
    "card": "--card", "force_gate": "--force-gate", "address": "--address", "scheme": "--scheme",
    "lead_map": "--lead",
}
_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(message: str) -> str:
    """A library message with each backticked parameter shown as its command-line flag."""
    return _PARAMETER.sub(lambda m: FLAGS.get(m.group(1), m.group(1)), message)


class InternalError(click.ClickException):
    """An error edgemed did not anticipate: still one line and a non-zero exit (70, EX_SOFTWARE, so tests and
    scripts can tell it from a refused input), with the traceback only when EDGEMED_DEBUG is set."""

    exit_code = 70


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn edgemed's errors and file-system errors into a one-line message and exit code 1; anything else into
    one line and exit code 70 (EDGEMED_DEBUG=1 re-raises it with its traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OptionError as exc:
            raise click.UsageError(as_flags(str(exc).replace("\n", " "))) from exc
        except EdgemedError as exc:
            raise click.ClickException(as_flags(str(exc).replace("\n", " "))) from exc
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from exc
        except MemoryError as exc:
            raise click.ClickException("out of memory; the input is larger than this machine can hold") from exc
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("EDGEMED_DEBUG"):
                raise
            message = (str(exc).splitlines() or [""])[0][:300]
            raise InternalError(f"internal error ({type(exc).__name__}: {message}); this is a bug in edgemed, "
                                "please report it (EDGEMED_DEBUG=1 shows where)") from exc

    return wrapper


def seed_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", default=0, show_default=True, type=int,
                        help="Seed for data generation, splits, initialisation and shuffling.")(func)


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")(func)


def force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--force", is_flag=True, help="Replace existing output files (never an input).")(func)


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--device`: where a model runs (a preset or a device profile). Training's torch device is --accelerator."""
    from edgemed.devices.profile import list_profiles
    from edgemed.runtime.engines.providers import DEFAULT_DEVICE

    return click.option(
        "--device", default=DEFAULT_DEVICE, show_default=True, metavar="NAME",
        help=f"cpu, cuda, a device profile ({', '.join(list_profiles())}) or a profile .toml: providers in "
             "order, threads and budgets. A missing provider falls back to CPU with a warning.",
    )(func)


def threads_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--threads", type=click.IntRange(1),
                        help="Intra-op threads (default: the device profile's; at most the cores present).")(func)


def csv_list(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def parse_value(text: str) -> Any:
    """A CLI config value: int, float, true/false, or a comma list of those; anything else stays text."""
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    """`KEY=VALUE` strings to a dict, with a clear error for anything else; `KEY.SUB=VALUE` sets one entry of a
    mapping (`-c trees.rounds=50`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        *parents, last = [part.strip().replace("-", "_") for part in key.split(".")]
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict) or not parent:
                raise click.BadParameter(f"{pair!r}: {parent!r} is set both as a value and as a mapping",
                                         param_hint=option)
        if not last or isinstance(target.get(last), dict):
            raise click.BadParameter(f"{pair!r}: {key!r} is not a key of one value", param_hint=option)
        target[last] = parse_value(value.strip())
    return out


def backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--backend and --precision: the engine that runs the model (the registry's list), and its inference
    precision where the engine offers more than the file's own."""
    from edgemed.runtime.engines import engine_names, engine_precisions

    func = click.option("--precision", type=click.Choice(list(engine_precisions())), default="fp32",
                        show_default=True, help="OpenVINO's inference precision (bf16 where the CPU has it); "
                        "onnxruntime engines run the file's own precision.")(func)
    return click.option("--backend", type=click.Choice(list(engine_names())), default="onnxruntime",
                        show_default=True, help="The engine: onnxruntime (CPU or the device's providers), "
                        "openvino (the openvino extra), cuda or tensorrt (onnxruntime-gpu, the gpu extra).")(func)


def _lead_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in values:
        model, sep, record = (part.strip() for part in pair.partition("="))
        if not sep or not model or not record:
            raise click.BadParameter(f"{pair!r} is not MODEL=RECORD (the model's lead, then the recording's: "
                                     "MLII=ECG1)", ctx, param)
        if model in out:
            raise click.BadParameter(f"the model's lead {model!r} is mapped twice", ctx, param)
        out[model] = record
    return out or None


def lead_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--lead MODEL=RECORD: which lead of a recording stands for a model lead named otherwise (never guessed)."""
    return click.option("--lead", "lead_map", multiple=True, metavar="MODEL=RECORD", callback=_lead_pairs,
                        help="The recording's lead that stands for a model lead it names otherwise (MLII=II, "
                             "MLII=ECG1); repeat for each lead. Leads are matched by name, never guessed.")(func)


def recording_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--sampling-rate, --beats and --lead: how a beat model reads raw recordings (run, score)."""
    func = lead_option(func)
    func = click.option("--beats", type=click.Choice(["detect", "reference"]), default="detect", show_default=True,
                        help="Beat models: beats found by the detector, or a WFDB record's reference "
                             "annotations.")(func)
    return click.option("--sampling-rate", "sampling_rate_hz", type=click.FloatRange(min=0, min_open=True),
                        help="Beat models: the rate (Hz) of a raw .npy or CSV signal.")(func)
