"""The monitor's alarms: each a state (inactive or active, with a start and then an end) fed by classified beats,
the signal's flatness and the source's faults, with its IEC 60601-1-8 priority and the evidence it rests on.

| alarm | starts | ends |
|---|---|---|
| ventricular_run | `vrun_beats` consecutive V beats | a beat that is not V |
| couplet | exactly two consecutive V beats | at once |
| frequent_pvc | at least `pvc_per_minute` V beats in the last minute | fewer |
| bradycardia / tachycardia | heart rate beyond its limit for `hold_s` | back within it |
| extreme_rate | beyond the extreme limits for `hold_s` | back within them |
| pause | a beat more than `pause.seconds` after the previous one, the signal unbroken between them | at once |
| asystole | no beat for `asystole.seconds` while a signal is present | the next beat |
| lead_off | the signal flat (peak-to-peak under `flat_mv` for `window_s`) | a signal again |
| atrial_fibrillation | irregular RR (`edgemed.runtime.ecg.episodes.AFTracker`) for 15 s | regular for 10 s |
| signal_quality | `uncertain_share` of the last beats uncertain or implausible | fewer |
| source_fault | a stall, disconnection, garbage, partial frame, NaN, wrong rate, a failed model run | signal returns |

The heart rate is 60 over the median of the last `window_beats` RR intervals, intervals next to a V beat left out.
Alarms that follow a level end with hysteresis (frequent PVCs below half their limit, rates 5 bpm back within
theirs), so a value hovering at a limit does not make them chatter. Where the signal breaks (`gap`: leads off, a
source fault), the beats after it are not the next in rhythm: no pause, RR interval, run or AF window spans it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.runtime.ecg.episodes import AF_MERGE_S, AF_MIN_S, AFTracker
from edgemed.runtime.model.prediction import UNCERTAIN
from edgemed.runtime.monitor.profile import AlarmProfile

POINT = "point"  # an event with no duration to wait for: it starts and ends at once
HYSTERESIS = 0.5  # frequent PVCs end below half their limit
RATE_MARGIN_BPM = 5.0  # a rate alarm ends this far back within its limit


@dataclass
class Event:
    id: int
    kind: str
    priority: str
    start_s: float
    end_s: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "priority": self.priority, "start_s": round(self.start_s, 3),
                "end_s": None if self.end_s is None else round(self.end_s, 3), "evidence": self.evidence}


class AlarmEngine:
    """Feed beats (`beat`), signal chunks (`signal`), faults (`fault`) and the passing time (`tick`); each returns
    the (state, event) updates it caused: ("start", e), ("end", e) or ("point", e)."""

    def __init__(self, profile: AlarmProfile, fs: float) -> None:
        self.p, self.fs = profile, fs
        self.active: dict[str, Event] = {}
        self.events: list[Event] = []
        self._next_id = 1
        self._last_beat: tuple[float, str] | None = None
        self._rr: deque[float] = deque(maxlen=int(profile["heart_rate.window_beats"]))
        self._v_run: list[float] = []
        self._v_times: deque[float] = deque()
        self._quality: deque[bool] = deque(maxlen=int(profile["quality.window_beats"]))
        self._af = AFTracker(fs)
        self._af_since: float | None = None
        self._af_clear_since: float | None = None
        self._rate_since: dict[str, float] = {}
        self.flat_since: float | None = None
        self.heart_rate: float | None = None

    # -- event bookkeeping -------------------------------------------------------------------------------------

    def _start(self, kind: str, t: float, evidence: dict[str, Any], priority_of: str | None = None) -> list:
        if kind in self.active:
            self.active[kind].evidence.update(evidence)
            return []
        event = Event(self._next_id, kind, self.p.priorities[priority_of or kind], t, evidence=dict(evidence))
        self._next_id += 1
        self.active[kind] = event
        self.events.append(event)
        return [("start", event)]

    def _end(self, kind: str, t: float) -> list:
        event = self.active.pop(kind, None)
        if event is None:
            return []
        event.end_s = max(t, event.start_s)
        return [("end", event)]

    def _point(self, kind: str, start: float, end: float, evidence: dict[str, Any]) -> list:
        event = Event(self._next_id, kind, self.p.priorities[kind], start, end, dict(evidence))
        self._next_id += 1
        self.events.append(event)
        return [(POINT, event)]

    # -- inputs -------------------------------------------------------------------------------------------------

    def beat(self, t: float, label: str, implausible: bool = False) -> list:
        """One classified beat at `t` seconds. While the leads are off it is no evidence of a rhythm (its window
        holds the flat line or the filters' ringing at its start: three such beats once raised a ventricular run)."""
        if "lead_off" in self.active:
            label = UNCERTAIN
        silence = self.active.get("asystole")
        out = self._end("asystole", t) if silence is not None and t > silence.start_s else []
        previous = self._last_beat
        if previous is not None:
            gap = t - previous[0]
            if gap > self.p["pause.seconds"]:
                out += self._point("pause", previous[0], t, {"seconds": round(gap, 2)})
            if label != "V" and previous[1] != "V":
                self._rr.append(gap)
        self._last_beat = (t, label)
        out += self._rhythm(t)
        out += self._ectopy(t, label)
        out += self._fibrillation(t, label)
        self._quality.append(implausible or label == "uncertain")
        share = sum(self._quality) / len(self._quality)
        if len(self._quality) == self._quality.maxlen and share >= self.p["quality.uncertain_share"]:
            out += self._start("signal_quality", t, {"uncertain_share": round(share, 2)})
        elif share < self.p["quality.uncertain_share"]:
            out += self._end("signal_quality", t)
        return out

    def _rhythm(self, t: float) -> list:
        if len(self._rr) < self._rr.maxlen:
            return []
        self.heart_rate = hr = 60.0 / float(np.median(self._rr))
        p, out = self.p, []
        checks = {"bradycardia": hr < p["heart_rate.bradycardia_bpm"],
                  "tachycardia": hr > p["heart_rate.tachycardia_bpm"],
                  "extreme_rate": hr < p["heart_rate.extreme_bradycardia_bpm"]
                  or hr > p["heart_rate.extreme_tachycardia_bpm"]}
        clear = {"bradycardia": hr >= p["heart_rate.bradycardia_bpm"] + RATE_MARGIN_BPM,
                 "tachycardia": hr <= p["heart_rate.tachycardia_bpm"] - RATE_MARGIN_BPM,
                 "extreme_rate": p["heart_rate.extreme_bradycardia_bpm"] + RATE_MARGIN_BPM <= hr
                 <= p["heart_rate.extreme_tachycardia_bpm"] - RATE_MARGIN_BPM}
        for kind, beyond in checks.items():
            if not beyond:
                self._rate_since.pop(kind, None)
                if clear[kind]:  # hysteresis: ends only clearly back within the limit
                    out += self._end(kind, t)
                continue
            since = self._rate_since.setdefault(kind, t)
            if t - since >= p["heart_rate.hold_s"]:
                out += self._start(kind, since, {"heart_rate_bpm": round(hr, 1)})
        return out

    def _ectopy(self, t: float, label: str) -> list:
        out = []
        if label == "V":
            self._v_run.append(t)
            self._v_times.append(t)
            if len(self._v_run) >= self.p["ectopy.vrun_beats"]:
                rate = 60.0 * (len(self._v_run) - 1) / max(self._v_run[-1] - self._v_run[0], 1e-3)
                out += self._start("ventricular_run", self._v_run[0], {"beats": len(self._v_run),
                                                                        "rate_bpm": round(rate, 1)})
        else:
            if len(self._v_run) == 2:
                out += self._point("couplet", self._v_run[0], self._v_run[1], {"beats": 2})
            if self._v_run:
                out += self._end("ventricular_run", self._v_run[-1])
            self._v_run = []
        while self._v_times and self._v_times[0] < t - 60.0:
            self._v_times.popleft()
        count = len(self._v_times)
        if count >= self.p["ectopy.pvc_per_minute"]:
            out += self._start("frequent_pvc", t, {"pvc_per_minute": count})
        elif count < HYSTERESIS * self.p["ectopy.pvc_per_minute"]:  # hysteresis: no chatter at the limit
            out += self._end("frequent_pvc", t)
        return out

    def _fibrillation(self, t: float, label: str) -> list:
        irregular = self._af.push(int(round(t * self.fs)), label)
        if not self._af.ready:
            return []  # a window is still filling (the start, after a gap): an AF alarm neither starts nor ends
        if irregular:
            self._af_clear_since = None
            self._af_since = self._af_since if self._af_since is not None else t
            if t - self._af_since >= AF_MIN_S:
                return self._start("atrial_fibrillation", self._af_since,
                                   {"irregularity": round(self._af.irregularity, 3)})
            return []
        self._af_since = None
        if "atrial_fibrillation" in self.active:
            self._af_clear_since = self._af_clear_since if self._af_clear_since is not None else t
            if t - self._af_clear_since >= AF_MERGE_S:
                return self._end("atrial_fibrillation", self._af_clear_since)
        return []

    def signal(self, t_end: float, flat: bool) -> list:
        """The signal up to `t_end` seconds: whether its last `asystole.window_s` were flat."""
        if flat:
            self.flat_since = self.flat_since if self.flat_since is not None else t_end
            return self._start("lead_off", self.flat_since, {"flat_mv": self.p["asystole.flat_mv"]})
        self.flat_since = None
        return self._end("lead_off", t_end)

    def gap(self, t: float) -> list:
        """The signal broke at `t` seconds (leads off, a fault): a V run seen so far ends with its last beat (two V
        beats are a couplet), and the next beat starts the rhythm afresh; alarms that describe a state (AF, rates,
        frequent PVCs) stay as they are until beats say otherwise."""
        out = []
        if len(self._v_run) == 2:
            out += self._point("couplet", self._v_run[0], self._v_run[1], {"beats": 2})
        if self._v_run:
            out += self._end("ventricular_run", self._v_run[-1])
        self._v_run = []
        self._last_beat = None
        self._af = AFTracker(self.fs)
        self._af_since = None
        return out

    def tick(self, t: float, last_detected: float | None = None) -> list:
        """Beats are known up to `t` seconds of signal, the last one detected at `last_detected` (the detector
        knows of a beat about one RR interval before it is classified; default: the last classified beat): no
        beat for too long is asystole, unless the leads are off."""
        if last_detected is None and self._last_beat is not None:
            last_detected = self._last_beat[0]
        if last_detected is None or "lead_off" in self.active:
            return []
        silent = t - last_detected
        if silent >= self.p["asystole.seconds"]:
            return self._start("asystole", last_detected, {"seconds_without_beat": round(silent, 1)})
        return []

    def fault(self, t: float, kind: str, detail: str, ongoing: bool) -> list:
        """A source fault at `t`: an ongoing one (a stall) stays active until `recovered`."""
        if ongoing:
            return self._start("source_fault", t, {"fault": kind, "detail": detail})
        return self._point("source_fault", t, t, {"fault": kind, "detail": detail})

    def recovered(self, t: float) -> list:
        return self._end("source_fault", t)

    def close(self, t: float) -> list:
        """The end of monitoring: every active alarm ends here."""
        return [u for kind in list(self.active) for u in self._end(kind, t)]
