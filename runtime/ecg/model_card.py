"""The model card `edgemed evaluate` writes: what the model is for, what it was trained and evaluated on and how,
its per-class results, its calibration and its known limitations, in Markdown. Its first line names the model's
sha256, so `edgemed bundle --card` can refuse a card written for another model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgemed.runtime.ecg.evaluate import Evaluation
from edgemed.runtime.ecg.evaluate_report import class_table, episode_table, pct
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.model.card import card_header

FEW_BEATS = 100  # classes with fewer reference beats than this get a limitation line
def _training(prov: dict[str, Any]) -> list[str]:
    if not prov:
        return ["Not recorded in the model's metadata."]
    opts = prov.get("data_options") or {}
    lines = [f"- Data: `{prov.get('data', 'unknown')}` (sha256 `{str(prov.get('data_sha256', ''))[:16]}...`)"]
    if opts:
        lines.append("- Options: " + ", ".join(f"{k}={v}" for k, v in sorted(opts.items())))
    if prov.get("validation_groups"):
        lines.append(f"- Validation (early stopping, calibration) on groups: {', '.join(prov['validation_groups'])}")
    metrics = prov.get("metrics") or {}
    if metrics.get("macro_f1") is not None:
        lines.append(f"- Validation macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics.get('accuracy') or 0:.3f}")
    version = (prov.get("packages") or {}).get("edgemed") or "unknown"
    when = prov.get("created_utc", "at an unknown time")
    lines.append(f"- Seed {prov.get('seed')}, edgemed {version}, trained {when}")
    return lines


def _overlap(model: EdgeModel, ev: Evaluation) -> list[str]:
    """Evaluated records the model may have trained on: same data folder, not among the validation groups."""
    prov = model.metadata.provenance
    source, held_out = str(prov.get("data", "")), set(prov.get("validation_groups") or [])
    names = {r.record for r in ev.records}
    trained = (prov.get("data_options") or {}).get("records")
    if trained:
        return sorted(names & set(trained) - held_out)
    return sorted(names - held_out) if source and ev.source_folder and Path(source) == ev.source_folder else []


def model_card(model: EdgeModel, ev: Evaluation) -> str:
    spec = model.spec
    pre = spec.preprocessing
    d = ev.to_dict()
    gross = d["gross"]
    cal = spec.calibration
    window = pre.window
    ctx = pre.beat_context
    quant = model.metadata.quantization
    lines = [card_header(model.sha256), f"# Model card: {model.path.name}", "",
             f"Architecture `{spec.architecture}`, classes {', '.join(spec.labels)}, sha256 `{model.sha256}`"
             + (f", quantised {quant.get('mode')}" if quant else "") + ".", "", *_hyperparameters(model),
             "## Intended use", "",
             "Beat-by-beat classification of a surface ECG into the AAMI EC57 heartbeat classes "
             f"({', '.join(spec.labels)}), as decision support for clinicians and engineers reviewing arrhythmia "
             "recordings: every label is to be reviewed by a qualified person. Not a diagnosis, not an alarm, not "
             "for paced rhythms or paediatric ECG unless evaluated on such data.", "",
             f"Input: lead(s) {', '.join(spec.channel_names) or 'unnamed'}, resampled to "
             f"{pre.sampling_rate_hz:g} Hz"
             + (f" (accepted raw rates {pre.rate_range_hz[0]:g}-{pre.rate_range_hz[1]:g} Hz)" if pre.rate_range_hz
                else "")
             + (f", band-passed {pre.bandpass.low_hz:g}-{pre.bandpass.high_hz:g} Hz "
                f"({'causal' if not pre.bandpass.zero_phase else 'zero-phase'})" if pre.bandpass else "")
             + (f"; a window from {window.before_s:g} s before to {window.after_s:g} s after each R peak"
                if window else "")
             + (f"; rhythm context {', '.join(ctx.features)} ({'causal' if ctx.causal else 'uses the next beat'})"
                f", template of the previous {ctx.template_beats} beats" if ctx else "") + ".", "",
             "## Training data", "", *_training(model.metadata.provenance), "",
             "## Evaluation data and protocol", "",
             f"- Records ({len(ev.records)}): {', '.join(r.record for r in ev.records)}",
             f"- Beats from the {'reference annotations' if ev.beats == 'reference' else 'beat detector'}; "
             f"{gross['reference_beats']:,} reference beats, every one counted", f"- {d['rule']}"]
    overlap = _overlap(model, ev)
    if overlap:
        lines.append(f"- **Warning**: records {', '.join(overlap)} may have been used in training; figures on them "
                     "are not patient-independent")
    lines += ["", "## Results (gross)", "", *class_table(gross["per_class"], ev.labels), ""]
    if gross["detection"]:
        det = gross["detection"]
        lines += [f"Beat detection: Se {pct(det['se'])} %, +P {pct(det['ppv'])} % ({det['fn']:,} missed, "
                  f"{det['fp']:,} extra).", ""]
    if gross.get("episodes"):
        lines += ["## Runs and rhythm episodes", "", *episode_table(gross["episodes"])]
    lines += ["## Calibration", "",
              f"- Temperature {cal.temperature:.3f}, fitted on {cal.fitted_on or 'nothing recorded'}"
              + (f"; expected calibration error {cal.ece_before:.4f} before, {cal.ece_after:.4f} after"
                 if cal.ece_before is not None else "")]
    if gross["calibration"]:
        lines.append(f"- On the evaluation beats: ECE {gross['calibration']['ece']:.4f}")
    if cal.abstain_below:
        lines.append(f"- Abstains (\"uncertain\") below a top probability of {cal.abstain_below}; coverage "
                     f"{pct(cal.coverage)} % on validation"
                     + (f", {pct(gross['calibration']['coverage'])} % here" if gross["calibration"] else ""))
    lines += ["", "## Known limitations", "", *_limitations(ev, gross)]
    return "\n".join(lines) + "\n"


def _limitations(ev: Evaluation, gross: dict[str, Any]) -> list[str]:
    out = []
    for c, s in gross["per_class"].items():
        if s["reference"] < FEW_BEATS:
            out.append(f"- Class {c}: only {s['reference']} reference beats in the evaluation; its figures are "
                       "not reliable")
        elif s["se"] is not None and s["se"] < 0.8:
            out.append(f"- Class {c}: sensitivity {pct(s['se'])} % here; many {c} beats are missed")
        if s["ppv"] is not None and s["ppv"] < 0.5 and s["reference"]:
            out.append(f"- Class {c}: positive predictivity {pct(s['ppv'])} %; most {c} labels are wrong")
    failed = [r.record for r in ev.records if r.error]
    if failed:
        out.append(f"- Records {', '.join(failed)} could not be classified; their beats count as unclassified")
    out += ["- Trained and evaluated on MIT-BIH-like ambulatory recordings (two leads, 360 Hz, 1970s hardware); "
            "other devices, lead placements and populations may behave differently",
            "- Fusion (F) and unclassifiable (Q) beats are rare in every public database and poorly separated "
            "by any published inter-patient method",
            "- Noise: muscle and electrode-motion artifacts are taken for beats, often labelled V; in a noisy "
            "stretch ventricular runs and couplets are unreliable (measured with generated noise on MIT-BIH: "
            "benchmarks/mitdb_noise.py)"]
    return out


def _hyperparameters(model: EdgeModel) -> list[str]:
    """The architecture's configuration as trained (members, trees), when the export recorded it."""
    config = model.metadata.provenance.get("model_config")
    if not isinstance(config, dict) or not config:
        return []
    return [f"Configuration: `{json.dumps(config, sort_keys=True, default=str)}`", ""]
