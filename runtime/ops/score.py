"""`edgemed score`: an archive scored on Ray Data (`pip install 'edgemed[scale]'`), resumably.

The archive's items (each WFDB record of a folder, each `.npz` shard, each image, or a file given by path) become a
Ray dataset; `map_batches` hands them to `Scorer` actors (a callable class: each actor loads the model once, checks
its sha256 against the one given, and keeps one runtime session). An actor scores an item exactly as `edgemed run`
does and writes its rows to `predictions/<key>.parquet` (temporary file, then rename), so a re-run with the same
`--out` skips every item already written and never duplicates rows; an item that fails is recorded in
`failures/<key>.json` with the reason, skipped, and tried again by the next run. `summary.json` gathers per-item
counts, failures and throughput. Without `--address`, a local Ray with `workers` CPUs is started and stopped here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemed.core.atomic import check_output_folder, write_atomic, write_bytes_atomic
from edgemed.core.errors import DataError, EdgemedError, InputError

PREDICTIONS, FAILURES = "predictions", "failures"


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise InputError("edgemed score needs Ray: pip install 'edgemed[scale]'") from exc
    return ray


def list_items(paths: list[Path]) -> list[Path]:
    """Every item of the archive: a WFDB folder's records, a folder's .npz shards or images, or files as given
    (`edgemed.core.readers.list_items`)."""
    from edgemed.core import readers

    items: list[Path] = []
    for p in paths:
        try:
            items += readers.list_items(p)
        except DataError as exc:
            raise InputError(str(exc)) from exc
    if not items:
        raise InputError("nothing to score")
    return list(dict.fromkeys(items))


def item_key(path: Path) -> str:
    """A stable file name for an item's results: a digest of its resolved path, with its name for readers."""
    resolved = str(Path(path).resolve())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(path).name)[:60]
    return f"{safe}-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"


class Scorer:
    """A Ray actor: one model session, scoring one item per call and writing its Parquet part."""

    def __init__(self, model: str, sha256: str, out: str, options: dict[str, Any]) -> None:
        from edgemed.runtime.model import EdgeModel

        self.model = EdgeModel(model, require_integrity=True, threads=options.pop("threads", 1))
        if self.model.sha256 != sha256:
            raise EdgemedError(f"{model}: sha256 {self.model.sha256[:16]}... on this worker, {sha256[:16]}... where "
                               "the job started; the model changed or differs between machines")
        self.out, self.options = Path(out), options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results: dict[str, list] = {"key": [], "item": [], "rows": [], "seconds": [], "error": []}
        for item, key in zip(batch["item"], batch["key"], strict=True):
            start = time.perf_counter()
            rows, error = 0, ""
            try:
                rows = self._score(Path(item), key)
            except (EdgemedError, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {str(exc)[:500]}"
                failure = self.out / FAILURES / f"{key}.json"
                write_bytes_atomic(failure, json.dumps({"item": item, "error": error}), replace=True)
            for name, value in (("key", key), ("item", item), ("rows", rows),
                                ("seconds", time.perf_counter() - start), ("error", error)):
                results[name].append(value)
        return results

    def _score(self, item: Path, key: str) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from edgemed.runtime.ops.run import flat_rows, run_file

        result = run_file(self.model, item, **self.options)
        rows = flat_rows(result)
        for r in rows:
            r.setdefault("item", str(item))
        table = pa.Table.from_pylist(rows)
        write_atomic(self.out / PREDICTIONS / f"{key}.parquet", lambda t: pq.write_table(table, t), replace=True)
        stale = self.out / FAILURES / f"{key}.json"
        if stale.exists():
            stale.unlink()
        return len(rows)


@dataclass
class ScoreSummary:
    items: int
    scored: int
    skipped_done: int
    failed: list[dict[str, str]]
    rows: int
    seconds: float
    workers: int
    per_item: list[dict[str, Any]] = field(default_factory=list)
    scoring_seconds: float = 0.0  # from the started Ray to the last result: `seconds` less Ray's start and stop

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgemed.score/1", "items": self.items, "scored_now": self.scored,
                "already_done": self.skipped_done, "failed": self.failed, "rows_now": self.rows,
                "seconds": self.seconds, "scoring_seconds": self.scoring_seconds, "workers": self.workers,
                "items_per_minute": 60 * self.scored / self.seconds if self.seconds else None,
                "rows_per_second": self.rows / self.seconds if self.seconds else None, "per_item": self.per_item}


def score(model: Path, data: list[Path], out: Path, workers: int = 2, address: str | None = None,
          options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> ScoreSummary:
    """Score every item of `data` with `model` into `out` (see the module docstring)."""
    from edgemed.runtime.model import EdgeModel

    ray = _ray()
    sha = EdgeModel(model, require_integrity=True).sha256  # checked here, and again on every worker
    out = check_output_folder(out, what="`out`")  # what is in it is this job's own: a re-run resumes
    items = list_items(data)
    (out / PREDICTIONS).mkdir(parents=True, exist_ok=True)
    (out / FAILURES).mkdir(parents=True, exist_ok=True)
    keys = {str(p): item_key(p) for p in items}
    todo = [p for p in items if not (out / PREDICTIONS / f"{keys[str(p)]}.parquet").exists()]
    done = len(items) - len(todo)
    start = time.perf_counter()
    per_item: list[dict[str, Any]] = []
    started_here = False
    scoring_seconds = 0.0
    if todo:
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
                started_here = True
        ready = time.perf_counter()
        try:
            from ray.data import DataContext

            DataContext.get_current().enable_progress_bars = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            ds = ray.data.from_items([{"item": str(p), "key": keys[str(p)]} for p in todo],
                                     override_num_blocks=len(todo))
            scored = ds.map_batches(Scorer, batch_size=1, concurrency=min(workers, len(todo)), num_cpus=1,
                                    fn_constructor_kwargs={"model": str(Path(model).resolve()), "sha256": sha,
                                                           "out": str(out.resolve()),
                                                           "options": dict(options or {})})
            for row in _rows(scored):
                per_item.append(row)
                if progress is not None:
                    progress(Path(row["item"]).name)
            scoring_seconds = time.perf_counter() - ready
        finally:
            if started_here:
                ray.shutdown()
    seconds = time.perf_counter() - start
    failed = [{"item": r["item"], "error": r["error"]} for r in per_item if r["error"]]
    summary = ScoreSummary(len(items), sum(1 for r in per_item if not r["error"]), done, failed,
                           sum(int(r["rows"]) for r in per_item), seconds, workers,
                           [{k: r[k] for k in ("item", "rows", "seconds", "error")} for r in per_item],
                           scoring_seconds)
    write_bytes_atomic(out / "summary.json", json.dumps(summary.to_dict(), indent=1), replace=True)
    return summary


def _rows(ds) -> Iterator[dict[str, Any]]:
    for row in ds.iter_rows():
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
