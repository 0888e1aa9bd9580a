"""FHIR R4 Observation resources of a monitoring session, as JSON: the heart rate (LOINC 8867-4, MDC 147842
MDC_ECG_HEART_RATE, in /min), the beat labels of each period (LOINC 8884-9, heart rate rhythm: one Observation per
period with the beats of each class as components), and each alarm with its ECG strip as `valueSampledData`
(MDC 131329 MDC_ECG_ELEC_POTL, in mV). They follow the R4 Observation resource (checked in the tests against the
R4B models of `fhir.resources`: Observation is the same in R4 and R4B)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

LOINC, MDC, UCUM = "http://loinc.org", "urn:iso:std:iso:11073:10101", "http://unitsofmeasure.org"
VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                           "code": "vital-signs", "display": "Vital Signs"}]}
PROCEDURE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "procedure", "display": "Procedure"}]}
INTERPRETATION = {"high": "HH", "medium": "H", "low": "A"}  # v3 ObservationInterpretation, by alarm priority


def _time(start: dt.datetime, seconds: float) -> str:
    return (start + dt.timedelta(seconds=float(seconds))).isoformat(timespec="milliseconds")


def heart_rate(subject: str, start: dt.datetime, t: float, bpm: float, device: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "category": [VITAL_SIGNS],
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"},
                                {"system": MDC, "code": "147842", "display": "MDC_ECG_HEART_RATE"}]},
            "subject": {"reference": subject}, "device": {"display": device},
            "effectiveDateTime": _time(start, t),
            "valueQuantity": {"value": round(float(bpm), 1), "unit": "/min", "system": UCUM, "code": "/min"}}


def rhythm(subject: str, start: dt.datetime, t0: float, t1: float, counts: dict[str, int], af: bool,
           device: str) -> dict[str, Any]:
    """The beats of one period by class (a component each, valueInteger), and the rhythm in words."""
    summary = ("atrial fibrillation suspected; " if af else "") + ", ".join(f"{k} {v}" for k, v in counts.items())
    return {"resourceType": "Observation", "status": "final", "category": [PROCEDURE],
            "code": {"coding": [{"system": LOINC, "code": "8884-9", "display": "Heart rate rhythm"}]},
            "subject": {"reference": subject}, "device": {"display": device},
            "effectivePeriod": {"start": _time(start, t0), "end": _time(start, t1)},
            "valueCodeableConcept": {"text": summary or "no beats"},
            "component": [{"code": {"text": f"{label} beats (AAMI EC57 class)"}, "valueInteger": int(n)}
                          for label, n in counts.items()]}


def sampled(strip: np.ndarray, fs: float) -> dict[str, Any]:
    """`valueSampledData` of one lead in mV: origin 0, period in ms, values to 3 decimals."""
    return {"origin": {"value": 0, "unit": "mV", "system": UCUM, "code": "mV"}, "period": round(1000.0 / fs, 6),
            "dimensions": 1, "data": " ".join(f"{v:.3f}" for v in np.asarray(strip, float))}


def alarm(subject: str, start: dt.datetime, event: dict[str, Any], strip: np.ndarray | None, fs: float,
          device: str) -> dict[str, Any]:
    """An alarm as an Observation: its kind and priority, its period, its evidence, and its ECG strip."""
    period = {"start": _time(start, event["start_s"])}
    if event["end_s"] is not None:
        period["end"] = _time(start, event["end_s"])
    evidence = ", ".join(f"{k} {v}" for k, v in event["evidence"].items())
    out = {"resourceType": "Observation", "status": "final", "category": [PROCEDURE],
           "code": {"coding": [{"system": LOINC, "code": "8601-7", "display": "EKG impression"}],
                    "text": f"alarm: {event['kind']}"},
           "subject": {"reference": subject}, "device": {"display": device},
           "effectivePeriod": period,
           "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                           "code": INTERPRETATION[event["priority"]]}],
                               "text": f"{event['priority']} priority"}],
           "note": [{"text": evidence or event["kind"]}]}
    if strip is not None and strip.size:
        out["component"] = [{"code": {"coding": [{"system": MDC, "code": "131329",
                                                  "display": "MDC_ECG_ELEC_POTL"}], "text": "ECG strip"},
                             "valueSampledData": sampled(strip, fs)}]
    return out


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A collection Bundle of the resources."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}
