"""`edgemed monitor`: the wire format, every alarm, replay equal to `run` beat for beat, faults as events (stdin,
a socket that drops and comes back), SIGTERM flushing every output, FHIR resources that validate, and the report."""

from __future__ import annotations

import csv
import html.parser
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import InputError
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.monitor.alarms import AlarmEngine
from edgemed.runtime.monitor.framing import FrameDecoder, StreamHeader, decode_header, encode_frames
from edgemed.runtime.monitor.profile import load_alarm_profile
from edgemed.runtime.monitor.session import Monitor
from edgemed.runtime.monitor.sources import TcpSource
from edgemed.train.data.synthetic_ecg import synthetic_recording

from helpers import write_wfdb

FS = 360.0


def test_frames_round_trip_and_a_bad_header_is_named():
    header = StreamHeader(250.0, 2, sample_type=1)
    sig = np.array([[0.1, -0.2, 1.5], [0.0, 0.3, -1.0]])
    data = header.encode() + encode_frames(header, sig)
    decoded = decode_header(data[:16])
    decoder = FrameDecoder(decoded)
    out = np.concatenate([decoder.feed(data[16:21]), decoder.feed(data[21:])], axis=1)
    np.testing.assert_allclose(out, sig, atol=1e-3)
    for bad, message in ((b"XXXX" + data[4:16], "magic"), (data[:6] + b"\x00\x00" + data[8:16], "channels"),
                         (data[:8] + np.float64(np.nan).tobytes(), "sampling rate")):
        with pytest.raises(InputError, match=message):
            decode_header(bad)


@pytest.fixture
def engine():
    return AlarmEngine(load_alarm_profile("adult"), FS)


def _feed(engine, beats):
    updates = []
    for t, label in beats:
        updates += engine.beat(t, label)
    return [(state, e.kind) for state, e in updates]


def test_ventricular_runs_couplets_and_frequent_pvcs(engine):
    beats = [(k * 0.8, "N") for k in range(10)]
    beats += [(8.0 + 0.4 * k, "V") for k in range(4)] + [(10.0, "N"), (10.4, "V"), (10.8, "V"), (11.6, "N")]
    got = _feed(engine, beats)
    assert ("start", "ventricular_run") in got and ("end", "ventricular_run") in got
    assert ("point", "couplet") in got
    run = next(e for e in engine.events if e.kind == "ventricular_run")
    assert run.evidence["beats"] == 4 and run.start_s == pytest.approx(8.0) and run.end_s == pytest.approx(9.2)
    assert engine.p.priorities["ventricular_run"] == "high"


def test_rate_alarms_hold_then_end_with_hysteresis(engine):
    slow = [(k * 1.5, "N") for k in range(20)]  # 40 bpm
    window, hold = int(engine.p["heart_rate.window_beats"]), engine.p["heart_rate.hold_s"]
    raised = [k for k, (t, label) in enumerate(slow) if ("start", "bradycardia") in
              [(state, e.kind) for state, e in engine.beat(t, label)]]
    onset = slow[window][0]  # the beat at which the rate window first fills
    assert next(e for e in engine.events if e.kind == "bradycardia").start_s == pytest.approx(onset)
    assert raised == [next(k for k, (t, _) in enumerate(slow) if t - onset >= hold)]  # announced after the hold
    t = slow[-1][0]
    back = [(t + (k + 1) * 1.15, "N") for k in range(12)]  # 52 bpm: within the limit, but not by 5 bpm
    assert ("end", "bradycardia") not in _feed(engine, back)
    t = back[-1][0]
    assert ("end", "bradycardia") in _feed(engine, [(t + (k + 1) * 0.9, "N") for k in range(12)])


def test_a_pause_asystole_and_lead_off_are_told_apart(engine):
    _feed(engine, [(k * 0.8, "N") for k in range(10)])
    assert [(s, e.kind) for s, e in engine.beat(7.2 + 3.5, "N")] == [("point", "pause")]
    assert engine.tick(10.7 + 4.0) == [] and engine.signal(14.7, flat=False) == []
    started = engine.tick(10.7 + 5.5)
    assert [(s, e.kind) for s, e in started] == [("start", "asystole")]
    assert [(s, e.kind) for s, e in engine.beat(17.0, "N")][0] == ("end", "asystole")
    # a flat signal is a lead-off, and no asystole is called while the leads are off
    assert [(s, e.kind) for s, e in engine.signal(19.0, flat=True)] == [("start", "lead_off")]
    assert engine.tick(30.0) == []


def test_asystole_is_timed_from_the_detector_not_the_late_classified_beats():
    """The detector knows of a beat about one RR interval before it is classified: silence counts from the last
    beat detected, and the classification of that beat, arriving later, does not end the asystole."""
    engine = AlarmEngine(load_alarm_profile("adult"), FS)
    _feed(engine, [(k * 0.8, "N") for k in range(10)])  # classified up to 7.2 s
    assert engine.tick(12.8, last_detected=8.0) == []  # 8.0 detected, not yet classified: 4.8 s of silence
    started = engine.tick(13.1, last_detected=8.0)
    assert [(s, e.kind, e.start_s) for s, e in started] == [("start", "asystole", 8.0)]
    assert [e.kind for _, e in engine.beat(8.0, "N")] == []  # the late label of the beat before: still silent
    assert [(s, e.kind, e.end_s) for s, e in engine.beat(20.0, "N")][:1] == [("end", "asystole", 20.0)]


def test_a_real_pause_under_the_asystole_limit_raises_no_asystole(exported, tmp_path):
    """A 3.7 s pause: classified beats come late, yet no asystole is called (the detector heard the next beat)."""
    fs = 360.0
    sig, _, _ = synthetic_recording("sinus", 60, fs, 1, seed=4)
    start, gap = int(30 * fs), int(3.7 * fs)
    paused = np.concatenate([sig[:, :start], np.repeat(sig[:, start : start + 1], gap, axis=1), sig[:, start:]],
                            axis=1)
    np.save(tmp_path / "paused.npy", paused)
    out = tmp_path / "m.jsonl"
    result = CliRunner().invoke(cli, ["monitor", str(exported["beat_cnn"]), str(tmp_path / "paused.npy"),
                                      "--sampling-rate", str(fs), "--speed", "0", "--jsonl", str(out), "-q"])
    assert result.exit_code == 0, result.output
    events = [r["kind"] for r in _jsonl(out) if r["type"] == "event"]
    assert "pause" in events and "asystole" not in events


def test_a_gap_in_the_signal_breaks_the_rhythm_not_the_alarms(engine):
    """After a gap (leads off, a fault) the next beat is not the next in rhythm: no pause or run spans it."""
    _feed(engine, [(k * 0.8, "N") for k in range(10)] + [(8.0, "V"), (8.4, "V")])
    assert [(s, e.kind) for s, e in engine.gap(9.0)] == [("point", "couplet")]
    assert _feed(engine, [(600.0, "V"), (600.8, "N")] + [(600.8 + k * 0.8, "N") for k in range(1, 20)]) == []


def test_leads_off_for_minutes_then_the_same_signal_gives_the_same_beats(exported, tmp_path):
    """The monitor ends its beat stream while the leads are off and starts a new one when the signal returns: the
    rhythm context does not span twenty minutes (every beat after it used to look premature), and no pause, run
    or couplet is made of the beats on either side."""
    fs = 360.0
    sig, _, _ = synthetic_recording("mixed", 60, fs, 1, seed=9)
    gap = int(1200 * fs)
    np.save(tmp_path / "off.npy", np.concatenate([sig, np.full((1, gap), 0.4), sig], axis=1))
    out = tmp_path / "m.jsonl"
    result = CliRunner().invoke(cli, ["monitor", str(exported["beat_cnn"]), str(tmp_path / "off.npy"),
                                      "--sampling-rate", str(fs), "--speed", "0", "--jsonl", str(out), "-q"])
    assert result.exit_code == 0, result.output
    rows = _jsonl(out)
    events = [r for r in rows if r["type"] == "event" and r["state"] in ("start", "point")]
    assert [e["kind"] for e in events if e["kind"] == "lead_off"] == ["lead_off"]
    assert not [e for e in events if e["kind"] in ("pause", "asystole")]
    span = (60.0, 1260.0)
    assert not [e for e in events if e["start_s"] < span[0] and (e["end_s"] or 1e9) > span[1]
                and e["kind"] != "lead_off"]
    beats = [(r["t"], r["label"]) for r in rows if r["type"] == "beat"]
    first = [label for t, label in beats if t < span[0]]
    second = [label for t, label in beats if t >= span[1]]
    assert len(first) > 50 and second == first


def test_beats_classified_while_the_leads_are_off_raise_no_rhythm_alarm(engine):
    """Beats classified after the lead-off alarm started come from the flat line or the filters' ringing at its
    start: three of them once raised a ventricular run at a real lead-off."""
    _feed(engine, [(k * 0.8, "N") for k in range(10)])
    assert [(s, e.kind) for s, e in engine.signal(10.0, flat=True)] == [("start", "lead_off")]
    assert _feed(engine, [(8.0 + 0.5 * k, "V") for k in range(4)]) == []


def test_irregular_rhythm_raises_atrial_fibrillation(engine):
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(0.45, 1.1, 80))
    got = _feed(engine, [(float(x), "N") for x in t])
    assert ("start", "atrial_fibrillation") in got


def test_poor_signal_quality_and_source_faults(engine):
    got = _feed(engine, [(k * 0.8, "uncertain" if k % 2 else "N") for k in range(30)])
    assert ("start", "signal_quality") in got
    assert [(s, e.kind) for s, e in engine.fault(24.0, "stall", "no samples", ongoing=True)] == [
        ("start", "source_fault")]
    assert [(s, e.kind) for s, e in engine.recovered(27.0)] == [("end", "source_fault")]


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mon")
    sig, beats, kinds = synthetic_recording("mixed", 150, FS, 2, seed=9)
    sig[0, int(60 * FS) : int(68 * FS)] *= 0.03  # the model's lead faint for 8 s: only the other lead shows beats
    # the model's lead second in the file: run and monitor both put it first and detect on both leads
    write_wfdb(folder, "m1", sig[::-1], FS, ["V5", "lead1"], beats, [{"N": "N", "S": "A", "V": "V"}[k] for k in kinds])
    return folder / "m1"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def replayed(exported, record, tmp_path_factory):
    """The record through `run` and through `monitor` (every output): (run's beats, the monitor's folder)."""
    model, out = exported["beat_cnn"], tmp_path_factory.mktemp("replayed")
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", str(model), str(record), "--out", str(out / "run.csv")])
    assert ran.exit_code == 0, ran.output
    with open(out / "run.csv") as f:
        expected = [(round(float(r["time_s"]), 3), r["label"]) for r in csv.DictReader(f)]
    result = runner.invoke(cli, ["monitor", str(model), str(record), "--speed", "0", "--jsonl",
                                 str(out / "m.jsonl"), "--report", str(out / "r.html"), "--fhir",
                                 str(out / "fhir"), "-q"])
    assert result.exit_code == 0, result.output
    return expected, out


def test_replay_gives_run_s_beats_and_labels_and_writes_every_output(exported, record, replayed):
    expected, out = replayed
    beats = [(b["t"], b["label"]) for b in _jsonl(out / "m.jsonl") if b["type"] == "beat"]
    assert len(beats) == len(expected)
    assert all(abs(a[0] - b[0]) <= 0.002 and a[1] == b[1] for a, b in zip(beats, expected, strict=True))
    _check_fhir(out / "fhir")
    _check_report(out / "r.html")
    again = CliRunner().invoke(cli, ["monitor", str(exported["beat_cnn"]), str(record), "--speed", "0", "--jsonl",
                                     str(out / "m.jsonl"), "-q"])
    assert again.exit_code == 1 and "already exists" in again.output  # nothing replaced without --force


def _browser() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                None)


@pytest.mark.skipif(_browser() is None, reason="no headless browser (apt install chromium)")
def test_the_report_renders_in_a_headless_browser_offline(replayed, tmp_path):
    from PIL import Image

    _, out = replayed
    flags = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9"]  # any fetch would fail
    url = (out / "r.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "<svg" in dom.stdout and "Beats per class per hour" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,1400", url], capture_output=True,
                   timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1400, 1000)
    drawn = (pixels < 200).mean(axis=1)  # rows with ink: text, the trend, the strips
    assert (drawn > 0.005).mean() > 0.2  # the page is drawn, not blank or an error page


def test_a_lab_streaming_layer_outlet_is_monitored(exported, tmp_path):
    """An LSL outlet on this machine (pylsl, the `lsl` extra) with labelled channels, the model's lead second:
    the monitor finds it by name, takes the lead by its label, and classifies beats until SIGTERM."""
    pylsl = pytest.importorskip("pylsl")
    name = f"edgemed-test-{time.time_ns()}"
    info = pylsl.StreamInfo(name, "ECG", 2, FS, "float32", name)
    channels = info.desc().append_child("channels")
    for label in ("V5", "lead1"):
        channels.append_child("channel").append_child_value("label", label)
    outlet = pylsl.StreamOutlet(info)
    sig, _, _ = synthetic_recording("sinus", 120, FS, 2, seed=3)
    frames = np.ascontiguousarray(sig[::-1].T, np.float32)
    stop = threading.Event()

    def feed():
        k, step = 0, int(FS / 10)
        while not stop.is_set() and k < len(frames):
            outlet.push_chunk(frames[k : k + step].tolist())
            k += step
            time.sleep(0.02)  # 5x real time

    out = tmp_path / "lsl.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemed.cli", "monitor", str(exported["beat_cnn"]),
                             f"lsl:{name}", "--jsonl", str(out), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and sum('"beat"' in line for line in out.read_text().splitlines()) >= 20:
                break
            time.sleep(0.5)
        running = proc.poll() is None
        if running:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        stop.set()
        feeder.join()
    if not running and "no Lab Streaming Layer stream" in err:
        pytest.skip("LSL discovery does not work on this machine (no multicast on loopback)")
    beats = [r for r in _jsonl(out) if r["type"] == "beat"]
    assert proc.returncode in (0, 143) and len(beats) >= 20, err
    assert {b["label"] for b in beats} <= {"N", "S", "V", "uncertain"}


def _check_fhir(folder):
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation

    kinds = {}
    for name in ("heart-rate.json", "rhythm.json", "alarms.json"):
        data = json.loads((folder / name).read_text())
        Bundle.model_validate(data)
        for entry in data["entry"]:
            Observation.model_validate(entry["resource"])
        kinds[name] = data["entry"]
    hr = kinds["heart-rate.json"][0]["resource"]
    assert hr["code"]["coding"][0]["code"] == "8867-4" and hr["valueQuantity"]["unit"] == "/min"
    strips = [e["resource"] for e in kinds["alarms.json"] if "component" in e["resource"]]
    assert all(len(s["component"][0]["valueSampledData"]["data"].split()) > 100 for s in strips)


class _Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.sources = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]


def _check_report(path):
    text = path.read_text()
    parser = _Parser()
    parser.feed(text)
    assert parser.sources == []  # self-contained: nothing fetched
    assert parser.tags.count("svg") >= 1 and "table" in parser.tags and "Beats per class per hour" in text


def _frames(signal_mv, fs=FS):
    header = StreamHeader(fs, 1, sample_type=1)
    return header.encode() + encode_frames(header, signal_mv)


def test_stdin_faults_are_events_and_sigterm_flushes_every_output(exported, tmp_path):
    sig, _, _ = synthetic_recording("mixed", 40, FS, 1, seed=11)
    out = tmp_path / "s.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemed.cli", "monitor", str(exported["beat_cnn"]), "-",
                             "--jsonl", str(out), "--report", str(tmp_path / "s.html"), "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(_frames(sig))
    proc.stdin.flush()
    time.sleep(6)  # then nothing: a stall
    proc.send_signal(signal.SIGTERM)
    said, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    records = _jsonl(out)
    assert sum(r["type"] == "beat" for r in records) > 20
    assert any(r["type"] == "event" and r["kind"] == "source_fault" for r in records)
    assert (tmp_path / "s.html").read_text().rstrip().endswith("</html>")
    assert b"stopped by signal" in said


def test_a_session_without_beats_claims_no_latency(exported, tmp_path):
    """A source that closes before its first frame: the summary says no latency was measured (null in the JSON),
    never a latency of 0.00 s."""
    proc = subprocess.run([sys.executable, "-m", "edgemed.cli", "monitor", str(exported["beat_cnn"]), "-",
                           "--report", str(tmp_path / "r.html")], input=b"", capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"0 beats" in proc.stdout and b"no beats, so no R-peak-to-label latency" in proc.stdout
    assert b"0.00 s" not in proc.stdout and "no R-peak-to-label latency" in (tmp_path / "r.html").read_text()


def test_a_socket_that_drops_and_comes_back_resumes(exported, tmp_path):
    sig, _, _ = synthetic_recording("mixed", 30, FS, 1, seed=12)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve():
        for part, extra in ((sig[:, : sig.shape[1] // 2], b"\x01"), (sig[:, sig.shape[1] // 2 :], b"")):
            conn, _ = server.accept()
            conn.sendall(_frames(part) + extra)  # the first connection drops inside a frame
            conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    records = []
    source = TcpSource("127.0.0.1", port, retry_s=0.1, reconnect=1)
    session = Monitor(EdgeModel(exported["beat_cnn"]), source, load_alarm_profile("adult"), records.append)
    session.run()
    faults = [r["evidence"]["fault"] for r in records if r["type"] == "event" and r["kind"] == "source_fault"]
    assert "frame" in faults and "disconnect" in faults
    beats = [r["t"] for r in records if r["type"] == "beat"]
    assert beats and max(beats) > 20  # beats after the reconnection, on one time line
    assert session.t == pytest.approx(sig.shape[1] / FS, abs=0.01)


def test_a_wrong_sampling_rate_is_refused_cleanly(exported, tmp_path):
    data = _frames(np.zeros((1, 100)), fs=1.0)
    result = subprocess.run([sys.executable, "-m", "edgemed.cli", "monitor", str(exported["beat_cnn"]), "-",
                             "--jsonl", str(tmp_path / "w.jsonl"), "-q"], input=data, capture_output=True)
    assert result.returncode == 1 and b"Traceback" not in result.stderr and b"Hz" in result.stderr
    assert any(r["kind"] == "source_fault" for r in _jsonl(tmp_path / "w.jsonl") if r["type"] == "event")


def test_memory_stays_bounded_over_a_long_replay(exported):
    """An hour of signal through a session: everything it keeps is bounded (the soak benchmark measures RSS)."""
    sig, _, _ = synthetic_recording("mixed", 3600, 180.0, 1, seed=13)

    class Hour:
        name, fs, names, annotations = "hour", 180.0, ["lead1"], None

        def chunks(self):
            from edgemed.runtime.monitor.sources import Chunk

            for k in range(0, sig.shape[1], 180):
                yield Chunk(sig[:, k : k + 180])

        def close(self):
            pass

    session = Monitor(EdgeModel(exported["beat_cnn"]), Hour(), load_alarm_profile("adult"), lambda r: None)
    session.run()
    assert session.t == pytest.approx(3600, abs=1)
    assert session._history_len <= 61 * 180 and len(session._recent) < 200
    assert len(session.state.trend) <= 3600 / 10 + 1 and len(session.strips) <= 200


def test_a_model_run_stopped_at_its_deadline_is_a_fault_event_then_an_error(exported, record):
    """The watchdog stops a model run that hangs (EDGEMED_MAX_RUN_S): the session records a `source_fault` of
    kind `model` saying why, closes its outputs and ends with the error, rather than waiting without alarms."""
    from edgemed.core.errors import LimitError
    from edgemed.runtime.monitor.sources import ReplaySource

    model = EdgeModel(exported["beat_cnn"])
    calls = []

    def hung(feeds):
        calls.append(1)
        if len(calls) > 2:
            raise LimitError("onnxruntime: one run took longer than 60 s and was stopped")
        return real(feeds)

    real, model._engine_run = model._engine_run, hung
    records = []
    session = Monitor(model, ReplaySource(record, speed=0), load_alarm_profile("adult"), records.append)
    with pytest.raises(LimitError, match="was stopped"):
        session.run()
    faults = [r["evidence"] for r in records if r["type"] == "event" and r["kind"] == "source_fault"]
    assert faults and faults[-1]["fault"] == "model" and "was stopped" in faults[-1]["detail"]
    assert any(r["type"] == "beat" for r in records)  # the beats before the fault were reported
