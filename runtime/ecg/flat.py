"""Beats whose window reaches into a flat stretch of a model lead: a lead coming off, an amplifier at its rail.

A beat found where a lead comes off has a window that holds part ECG, part flat line, and the conditioning filters'
ringing at the step between them: the model reads that as anything (three such beats once made a ventricular run in
the episodes of a DS1 excerpt with MLII off). Marked `flat_stretch` in the beat's quality, such a beat keeps its
row but has no class in runs, AF and alarms (`edgemed.runtime.ecg.episodes.rhythm_label`).

Flat: `FLAT_RUN_S` of raw samples within `FLAT_MV` peak to peak in a model lead, anywhere in the beat's window (the
model's window around the detected R peak, in raw samples). The monitor calls a signal flat at the same 0.02 mV
(over 2 s, `asystole.flat_mv`). On DS1's 22 records no 0.25 s of a lead stays that flat except at the ADC's rail
(+-5.12 mV): four stretches of record 116's MLII and four of record 223's second lead, 0.3 to 0.74 s each; the
isoelectric stretches of real ECG hold one sample value for at most 28 ms (MIT-BIH's 5 uV steps). Only the samples
inside a window decide its mark, so a stream and a whole record mark the same beats.
"""

from __future__ import annotations

import numpy as np

FLAT_STRETCH = "flat_stretch"  # quality mark
FLAT_MV = 0.02
FLAT_RUN_S = 0.25
BLOCK = 1 << 20  # starts computed at once


def flat_starts(x: np.ndarray, run: int) -> np.ndarray:
    """Per lead of `x` [leads, samples], whether the `run` samples from each start (len - run + 1 of them) stay
    within FLAT_MV peak to peak: running maxima and minima in O(samples) (van Herk / Gil-Werman, blocks of `run`)."""
    leads, n = x.shape
    if n < run:
        return np.zeros((leads, 0), bool)
    blocks = -(-n // run)
    padded = np.concatenate([x, np.repeat(x[:, -1:], blocks * run - n, axis=1)], axis=1).reshape(leads, blocks, run)
    spans = []
    for accumulate, fn in ((np.maximum.accumulate, np.max), (np.minimum.accumulate, np.min)):
        ahead = accumulate(padded, axis=2).reshape(leads, -1)  # from each block's start to each sample
        behind = accumulate(padded[:, :, ::-1], axis=2)[:, :, ::-1].reshape(leads, -1)  # to each block's end
        spans.append(fn(np.stack([behind[:, : n - run + 1], ahead[:, run - 1 : n]]), axis=0))
    return spans[0] - spans[1] < FLAT_MV


def flat_windows(x: np.ndarray, fs: float, centres: np.ndarray, before: int, after: int) -> np.ndarray:
    """For each beat at raw sample `centres[i]`, whether its window [centre - before, centre + after) in `x`
    [leads, samples] (cut at the signal's ends) holds a flat stretch in any lead."""
    run = max(2, int(round(FLAT_RUN_S * fs)))
    x = np.asarray(x)
    n = x.shape[1]
    # in blocks, so a day-long recording needs a few blocks' memory, not several copies of itself
    starts = np.concatenate([np.zeros(0, bool), *(
        flat_starts(np.asarray(x[:, b : min(b + BLOCK + run - 1, n)], np.float64), run).any(axis=0)
        for b in range(0, max(n - run + 1, 0), BLOCK))])
    counts = np.concatenate([[0], np.cumsum(starts)])
    centres = np.asarray(centres, np.int64)
    lo = np.clip(centres - before, 0, len(starts))
    hi = np.clip(centres + after - run + 1, 0, len(starts))  # the last start whose run ends inside the window
    return (hi > lo) & (counts[np.maximum(hi, lo)] > counts[lo])
