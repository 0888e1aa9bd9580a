"""`edgemed export`, `edgemed verify` and `edgemed quantize`: translate options into the export library."""

from __future__ import annotations

from pathlib import Path

import click

from edgemed.cli.options import force_option, user_errors
from edgemed.export.exporters import DEFAULT_OPSET, Exporter
from edgemed.export.pipeline import export_file
from edgemed.export.quant_data import DEFAULT_CALIBRATION_SAMPLES
from edgemed.export.quantize import (
    DEFAULT_MAX_DROP,
    MIN_PRODUCT_WEIGHTS,
    CalibrationMethod,
    QuantEngine,
    QuantMode,
    QuantScheme,
    RecurrentWeights,
)
from edgemed.export.verify import to_json, verify
from edgemed.train.models.layers import READOUTS


def _ints(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a comma list of integers, e.g. 1,12,5000") from exc


@click.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="ONNX file to write (default: beside MODEL, .onnx or .stream.onnx).")
@click.option("--opset", type=int, help=f"ONNX opset (14-20; default {DEFAULT_OPSET}, or 18 with --exporter dynamo).")
@click.option("--streaming", is_flag=True, help="Export the stateful streaming variant (families that stream).")
@click.option("--exporter", default=Exporter.AUTO.value, show_default=True,
              type=click.Choice([e.value for e in Exporter]),
              help="auto tries torchscript, then dynamo, and keeps the first that passes parity.")
@click.option("--no-real-data", is_flag=True, help="Parity on random inputs only, even if the training data is here.")
@click.option("--recurrent-readout", type=click.Choice(list(READOUTS)), default="final_state",
              show_default=True, help="GRU/LSTM/RNN: the native op's sequence_lens and final state (lean, fastest on "
              "onnxruntime), or a gather of the last valid step (for OpenVINO, which mis-handles sequence_lens).")
@click.option("--input-shape", help="Foreign models: example input shape, e.g. 1,12,5000.")
@click.option("--dynamic-axis", multiple=True, metavar="INDEX=NAME",
              help="Foreign models: a dynamic input axis, e.g. 0=batch (required) and 2=samples.")
@click.option("--labels", help="Foreign models: comma-separated class names, in output order.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow a file whose loading runs code from it (a pickled module, a .pt2, any TorchScript "
                   "program): only for trusted sources; recorded in the provenance.")
@force_option
@user_errors
def export_command(model, output, opset, streaming, exporter, no_real_data, recurrent_readout, input_shape,
                   dynamic_axis, labels, trust_pickle, force):
    """Export a checkpoint (or a TorchScript / ExportedProgram file) to ONNX, proving parity with PyTorch."""
    result = export_file(model, output, streaming=streaming, exporter=Exporter(exporter), opset=opset,
                         real_data=not no_real_data, readout=recurrent_readout, input_shape=_ints(input_shape),
                         dynamic_axes=tuple(dynamic_axis),
                         labels=tuple(p.strip() for p in labels.split(",")) if labels else (),
                         trust_pickle=trust_pickle, force=force)
    for attempt in result.attempts:
        click.echo(f"  {attempt['exporter']}: {attempt['outcome']}")
    click.echo(f"exporter: {result.exporter} ({result.reason})")
    click.echo(result.parity.table())
    click.echo(f"wrote {result.path} ({result.path.stat().st_size:,} bytes, sha256 {result.sha256[:16]}...) "
               f"and {result.path.name}.sha256")


@click.command("verify")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("onnx_model", metavar="MODEL.ONNX", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
@click.option("--no-real-data", is_flag=True, help="Random inputs only.")
@user_errors
def verify_command(checkpoint, onnx_model, as_json, no_real_data):
    """Rerun the parity check between a checkpoint and its ONNX export; exit 1 if it fails."""
    result = verify(checkpoint, onnx_model, use_real_data=not no_real_data)
    if as_json:
        click.echo(to_json(result))
    else:
        for note in result.notes:
            click.echo(note)
        click.echo(result.report.table())
    if not result.report.passed:
        failed, total = len(result.report.failures), len(result.report.rows)
        raise click.ClickException(f"parity failed on {failed} of {total} outputs")


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--mode", required=True, type=click.Choice([m.value for m in QuantMode]),
              help="dynamic: int8 weights; static: int8 QDQ calibrated on data; fp16: half precision, fp32 I/O.")
@click.option("--calibration", metavar="DATA", help="Calibration data (any --data source of `edgemed train`); "
              "default: the training split the model's provenance records.")
@click.option("--validation", metavar="DATA", help="Labelled data for the accuracy gate; default: the recorded "
              "validation groups.")
@click.option("--calibration-samples", default=DEFAULT_CALIBRATION_SAMPLES, show_default=True,
              type=click.IntRange(1))
@click.option("--method", default=CalibrationMethod.MINMAX.value, show_default=True,
              type=click.Choice([m.value for m in CalibrationMethod]),
              help="Static: how activation ranges are chosen from the calibration data.")
@click.option("--max-drop", default=DEFAULT_MAX_DROP, show_default=True, type=click.FloatRange(min=0),
              help="Largest allowed macro-F1 loss, in points (0.5 = 0.005).")
@click.option("--force-gate", is_flag=True,
              help="Write the model even if it fails the gate (recorded in its metadata).")
@click.option("--engine", default=QuantEngine.ONNXRUNTIME.value, show_default=True,
              type=click.Choice([v.value for v in QuantEngine]),
              help="Static int8 by onnxruntime's quantiser, or by NNCF with accuracy control (openvino extra).")
@click.option("--scheme", default=QuantScheme.AUTO.value, show_default=True,
              type=click.Choice([v.value for v in QuantScheme]),
              help="Static int8 types; auto: the first of u8s8, u8s8-reduced, u8u8 that holds on every --isa class.")
@click.option("--isa", "isa_text", metavar="CLASSES",
              help="Instruction-set classes the model must give the same results on (x86-avx2, x86-vnni, x86-amx, "
                   "aarch64, or all); default: this machine's, plus --device's.")
@click.option("--device", "device_name", metavar="PROFILE", help="The device the model is for: adds its class.")
@click.option("--recurrent-weights", default=RecurrentWeights.FLOAT.value, show_default=True,
              type=click.Choice([v.value for v in RecurrentWeights]),
              help="GRU/LSTM/RNN weights: float (pre-packed by onnxruntime, fastest) or int8 storage (4x smaller, "
                   "slower).")
@click.option("--min-product-weights", default=MIN_PRODUCT_WEIGHTS, show_default=True, type=click.IntRange(0),
              help="Int8: MatMul/Gemm nodes with fewer weights stay float, where int8 costs more than it saves "
                   "(0: quantise every one).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Default: MODEL.<mode>.onnx beside MODEL.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the report as JSON.")
@force_option
@user_errors
def quantize_command(model, mode, calibration, validation, calibration_samples, method, max_drop, force_gate,
                     engine, scheme, isa_text, device_name, recurrent_weights, min_product_weights, output,
                     json_path, force):
    """Quantise an exported model (int8 dynamic, int8 static QDQ, fp16), gated on validation accuracy."""
    from edgemed.export.quant_report import format_report
    from edgemed.export.quantize import quantize_file

    result = quantize_file(model, QuantMode(mode), calibration=calibration, validation=validation,
                           calibration_samples=calibration_samples, output=output, json_path=json_path, force=force,
                           isa=isa_text, device=device_name, method=CalibrationMethod(method), max_drop=max_drop,
                           force_gate=force_gate, engine=QuantEngine(engine), scheme=QuantScheme(scheme),
                           recurrent_weights=RecurrentWeights(recurrent_weights),
                           min_product_weights=min_product_weights)
    click.echo(format_report(result.report))
    click.echo(f"wrote {result.path}" + (f" and {json_path}" if json_path else ""))


@click.command("tune")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", required=True, metavar="PROFILE", help="Device profile: threads and budgets to tune for.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for tune.json, tune.md, tuned.json and model.tuned.onnx.")
@click.option("--calibration", metavar="DATA", help="Calibration data for int8 (default: the recorded training split).")
@click.option("--validation", metavar="DATA", help="Labelled data for the gates (default: the recorded validation).")
@click.option("--max-drop", default=DEFAULT_MAX_DROP, show_default=True, type=click.FloatRange(min=0),
              help="Largest allowed macro-F1 loss against the fp32 model, in points.")
@click.option("--max-class-drop", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Largest allowed loss of any class's sensitivity, in points.")
@click.option("--threads", "thread_list", metavar="N,M", help="Thread counts to try (default: 1 and the device's).")
@click.option("--runs", default=200, show_default=True, type=click.IntRange(5), help="Timed runs per survivor.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path),
              help="Cache of gate results, quantised files and memory probes (default: ~/.cache/edgemed/tune).")
@force_option
@user_errors
def tune_command(model, device, out_dir, calibration, validation, max_drop, max_class_drop, thread_list, runs,
                 cache_dir, force):
    """Search backend x precision x threads x graph options for the fastest variant of MODEL that passes parity
    and the clinical gates on the validation data and fits the device's budgets."""
    from edgemed.export.tune import tune_file

    threads = None
    if thread_list:
        try:
            threads = sorted({int(t) for t in thread_list.split(",")})
        except ValueError:
            raise click.BadParameter("give thread counts such as 1,2", param_hint="--threads") from None
    result = tune_file(model, device, out_dir, calibration=calibration, validation=validation, cache=cache_dir,
                       max_drop=max_drop, max_class_drop=max_class_drop, runs=runs, threads=threads, force=force)
    click.echo(result.markdown())
    click.echo(f"wrote {out_dir / 'tune.json'}, {out_dir / 'tune.md'}"
               + (f", {out_dir / 'model.tuned.onnx'} and {out_dir / 'tuned.json'}" if result.chosen else "")
               + (f" ({result.cached} gate results from the cache)" if result.cached else ""))
    if result.chosen is None:
        raise click.ClickException("no candidate passed the gates within the device's budgets")
