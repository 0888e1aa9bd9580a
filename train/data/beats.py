"""Beat datasets: one sample per beat of continuous recordings, with the rhythm context and template the beat
models take (computed by `edgemed.runtime.ecg.context.beat_inputs`, as the runtime computes them).

Every annotated beat is kept: windows reaching past a recording's ends are edge-padded, not dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import BeatContext, Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.runtime.ecg.context import beat_inputs
from edgemed.train.data.dataset import Dataset

DEFAULT_BEAT_WINDOW = (0.9, 0.9)
SYNTHETIC_BEAT_WINDOW = (0.3, 0.4)


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # [leads, samples], conditioned as the spec says
    beats: np.ndarray  # sample positions of every beat (reference annotations)
    classes: list[str]  # each beat's class


def make_beat_context(context: str | None = None, template_beats: int | None = None,
                      exact: BeatContext | dict | None = None, rr_features: tuple[str, ...] | None = None
                      ) -> BeatContext:
    """The context options of the data sources: `causal` (default: only what precedes a beat) or `full` (adds the
    next beat's interval), how many previous beats make the template, and which RR features (default: all that
    the context allows); or `exact`, a model's own."""
    if exact is not None:
        return exact if isinstance(exact, BeatContext) else BeatContext(**exact)
    if context not in (None, "causal", "full"):
        raise DataError(f"beat context {context!r}: use causal or full")
    causal = context != "full"
    past = ("pre_rr", "local_rr", "long_rr", "pre_local", "pre_long", "local_long", "pre_median", "local_cv")
    features = past if causal else (*past, "post_rr", "post_local", "post_pre")
    if rr_features:
        features = tuple(rr_features)
    return BeatContext(features=features, causal=causal,
                       template_beats=16 if template_beats is None else int(template_beats))


def beat_dataset(recordings: Iterable[Recording], fs: float, labels: tuple[str, ...], window: Window,
                 ctx: BeatContext, base: Preprocessing, channel_names: tuple[str, ...], source: str,
                 sha256: str | None = None) -> Dataset:
    """One sample per beat of every recording; groups are recording names (patients)."""
    xs, templates, rrs, ys, gs = [], [], [], [], []
    index = {c: i for i, c in enumerate(labels)}
    digest = hashlib.sha256()
    for rec in recordings:
        if not len(rec.beats):
            continue
        inputs = beat_inputs(rec.signal, rec.beats, fs, window, ctx)
        order = np.argsort(np.asarray(rec.beats), kind="stable")
        xs.append(inputs.windows)
        rrs.append(inputs.rr)
        if inputs.template is not None:
            templates.append(inputs.template)
        ys.extend(index[rec.classes[i]] for i in order)
        gs.extend([rec.name] * len(rec.beats))
        digest.update(rec.name.encode())
    if not ys:
        raise DataError(f"{source}: no beats")
    context = {"rr_features": np.concatenate(rrs)}
    if templates:
        context["beat_template"] = np.concatenate(templates)
    spec = DataSpec(labels=labels, layout="batch,lead,sample", channel_names=channel_names,
                    preprocessing=Preprocessing(**{**base.__dict__, "window": window, "beat_context": ctx}),
                    signal_checks=("range", "flat", "clipping"))
    return Dataset(X=np.concatenate(xs), y=np.array(ys), groups=np.array(gs), source=source,
                   sha256=sha256 or digest.hexdigest(), spec=spec, context=context)


def synthetic_beats(samples: int = 40, seed: int = 0, leads: int = 1, sampling_rate_hz: float = 180.0,
                    seconds: float = 120.0, beat_window: tuple[float, float] | None = None,
                    context: str | None = None, template_beats: int | None = None,
                    beat_context: BeatContext | dict | None = None,
                    rr_features: tuple[str, ...] | None = None) -> Dataset:
    """Beats of `samples` synthetic recordings (one patient each, `seconds` long, sinus rhythm with premature
    atrial and ventricular beats), labelled N, S and V, with their known R peaks."""
    from edgemed.train.data.synthetic_ecg import synthetic_recording

    if isinstance(leads, bool) or not isinstance(leads, int) or leads < 1:
        raise DataError(f"synthetic-beats takes a number of leads, not {leads!r}")
    recordings = []
    for i in range(samples):
        sig, beats, kinds = synthetic_recording("mixed", seconds, sampling_rate_hz, leads, seed=seed * 100_003 + i)
        recordings.append(Recording(f"s{i:04d}", sig, beats, [str(k) for k in kinds]))
    before_s, after_s = beat_window or SYNTHETIC_BEAT_WINDOW
    params = (f"synthetic-beats samples={samples} seed={seed} leads={leads} fs={sampling_rate_hz} seconds={seconds} "
              f"window={before_s},{after_s} context={context} template={template_beats}")
    ctx = make_beat_context(context, template_beats, beat_context, rr_features)
    if ctx != make_beat_context(context, template_beats):
        params += f" beat_context={ctx}"  # the same data as the defaults give keeps the same digest
    return beat_dataset(recordings, sampling_rate_hz, ("N", "S", "V"), Window("beat", before_s=before_s,
                        after_s=after_s, centre="R peak"), ctx,
                        Preprocessing(sampling_rate_hz=sampling_rate_hz, units="mV", causal=True),
                        tuple(f"lead{k + 1}" for k in range(leads)), params,
                        hashlib.sha256(params.encode()).hexdigest())
