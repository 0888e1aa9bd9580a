"""Self-describing checkpoints of plain types and tensors only (nanoGPT style), loaded with weights_only=True."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgemed.core.atomic import write_atomic
from edgemed.core.errors import CheckpointError, EdgemedError, UnsafeFileError, first_line
from edgemed.core.limits import check_file_size
from edgemed.core.pickle_scan import code_globals
from edgemed.core.spec import ModelSpec
from edgemed.core.zip_errors import ZIP_ERRORS
from edgemed.train.models import create_model

FORMAT_VERSION = 2
REQUIRED_KEYS = ("format_version", "architecture", "config", "state_dict")
V1_RENAMES = (("gru_reverse.", "rnn_reverse.rnn."), ("gru.", "rnn.rnn."))  # format 1 named the recurrent layer gru


def _plain(obj: Any) -> Any:
    """JSON round trip: guarantees only dict/list/str/number/bool/None go into the pickle stream."""
    return json.loads(json.dumps(obj))


def checkpoint_dict(model: nn.Module, provenance: dict[str, Any]) -> dict[str, Any]:
    """The spec once (labels, preprocessing, channel names, inputs), the remaining hyper-parameters, the weights."""
    return {
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture,
        "config": _plain(model.config.hyperparameters()),
        "spec": _plain(model.spec.to_dict()),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "provenance": _plain(provenance),
    }


def save_checkpoint(path: Path | str, model: nn.Module, provenance: dict[str, Any]) -> Path:
    """Write atomically: a temporary file in the same folder, renamed into place."""
    path = Path(path)
    write_atomic(path, lambda tmp: torch.save(checkpoint_dict(model, provenance), tmp))
    return path


def _code_in(path: Path) -> list[str]:
    """Globals beyond plain data and tensors that the file's pickle names (read as data, nothing run). A TorchScript
    archive is code through and through, and an archive whose pickle is ambiguous (two data.pkl, two members of
    one name) is refused: the scan must read exactly what torch.load would."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(set(names)) != len(names) or len(pickles) > 1:
                raise UnsafeFileError(f"{path}: refused: an ambiguous archive (two data.pkl, or two members of one "
                                      "name): what is checked might not be what loads")
            if any(n.rsplit("/", 1)[-1] == "constants.pkl" or n.split("/", 1)[-1].startswith("code/")
                   for n in names):
                return ["TorchScript code"]
            if not pickles:
                raise CheckpointError(f"{path}: not an edgemed checkpoint (a zip archive without data.pkl)")
            return code_globals(z.read(pickles[0]))
    except zipfile.BadZipFile:  # not an archive: a bare pickle
        try:
            return code_globals(path.read_bytes())
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither torch.save's archive nor a pickle)") \
                from exc
    except ZIP_ERRORS as exc:  # a damaged or crafted archive (a name flagged UTF-8 that is not, a truncated member)
        raise CheckpointError(f"{path}: a damaged archive: {first_line(exc, 200)}") from exc


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The raw checkpoint dict. A file whose pickle names anything beyond plain types and tensors is refused before
    it is opened (loading it would run that code); the rest loads with torch's weights-only unpickler."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    check_file_size(path, "model_mb")
    found = _code_in(path)
    if found:
        shown = ", ".join(sorted(set(found))[:3])
        raise UnsafeFileError(
            f"{path}: refused: it pickles Python objects ({shown}), and loading it would run their code. edgemed "
            "checkpoints hold only plain types and tensors: re-save the model with edgemed, or export it as a "
            "foreign model with `trust_pickle` if you trust its source"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/zipfile errors on non-checkpoints
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not an edgemed checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    version = ckpt["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this edgemed reads ({FORMAT_VERSION}); "
            "upgrade edgemed"
        )
    if version >= 2 and "spec" not in ckpt:
        raise CheckpointError(f"{path}: a format {version} checkpoint must hold its spec")
    return ckpt


def _config_and_weights(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full model config (hyper-parameters plus what the spec holds) and the state dict, from either format."""
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError("the config is not a mapping")
    config = dict(ckpt["config"])
    if ckpt["format_version"] >= 2:
        spec = ModelSpec.from_dict(ckpt["spec"])
        config.update(labels=spec.labels, preprocessing=spec.preprocessing, channel_names=spec.channel_names,
                      calibration=spec.calibration)
        return config, ckpt["state_dict"]
    weights = {}
    for key, value in ckpt["state_dict"].items():
        for old, new in V1_RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        weights[key] = value
    return config, weights


def _check_sizes(architecture: str, config: dict[str, Any], weights: dict[str, Any], path: Path) -> None:
    """Build the model on the meta device (no memory) and compare every tensor's shape with the file's, so a
    small file whose config asks for a huge model is refused before anything is allocated."""
    with torch.device("meta"):
        probe = create_model(architecture, **config)
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if expected != found:
        wrong = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        shown = ", ".join(f"{k} {list(expected.get(k, ()))} vs {list(found.get(k, ()))}" for k in wrong[:3])
        raise CheckpointError(f"{path}: the weights do not fit the {architecture} config ({len(wrong)} tensor(s) "
                              f"differ: config vs file {shown})")


def load_checkpoint(path: Path | str) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model in eval mode from its architecture name, config, spec and weights."""
    ckpt = read_checkpoint(path)
    try:
        config, weights = _config_and_weights(ckpt)
        if not isinstance(ckpt["architecture"], str) or not isinstance(weights, dict):
            raise CheckpointError(f"{path}: not an edgemed checkpoint (architecture or state_dict of the wrong type)")
        _check_sizes(ckpt["architecture"], config, weights, Path(path))
        model = create_model(ckpt["architecture"], **config)
        model.load_state_dict(weights)
    except CheckpointError:
        raise
    except EdgemedError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (RuntimeError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the {ckpt['architecture']} config ({exc})") from exc
    return model.eval(), ckpt
