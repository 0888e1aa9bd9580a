"""Real inputs for parity: a few windows from the data source a checkpoint records, when it is at hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.errors import EdgemedError
from edgemed.core.examples import array_feeds
from edgemed.core.spec import ModelSpec
from edgemed.train.data import SYNTHETIC_SOURCES, load_data
from edgemed.train.data.load import model_data_options
from edgemed.train.data.wfdb_source import list_records


def real_windows(provenance: dict[str, Any], spec: ModelSpec, limit: int = 8
                 ) -> tuple[dict[str, np.ndarray], str] | None:
    """Feeds of up to `limit` samples (the signal, and lengths for padded data) and a label for the report; None
    when the source is not available here (a WFDB folder or file on another machine)."""
    source = provenance.get("data")
    if not source:
        return None
    options = model_data_options(provenance.get("data_options"), spec)
    if source in SYNTHETIC_SOURCES:
        options["samples"] = max(limit, 10)
    elif Path(source).is_dir():
        options["records"] = (options.get("records") or list_records(Path(source)))[:1]
    elif not Path(source).is_file():
        return None
    try:
        ds = load_data(source, seed=provenance.get("seed", 0), options=options)
    except (EdgemedError, OSError):
        return None
    pick = np.linspace(0, len(ds) - 1, min(limit, len(ds))).astype(int)
    label = "real" if not source.startswith("synthetic") else "generated"
    return array_feeds(spec, ds.X[pick], None if ds.lengths is None else ds.lengths[pick],
                       {k: v[pick] for k, v in ds.context.items()}), label
