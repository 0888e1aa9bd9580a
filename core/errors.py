"""One error hierarchy for every stage, so callers can catch `EdgemedError` and the CLI can turn it into a message."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), at most `limit` characters:
    what a one-line refusal quotes of a library's error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


class EdgemedError(Exception):
    """Base class of every error edgemed raises on purpose (bad input, failed checks)."""


class SpecError(EdgemedError):
    """A model spec is missing, malformed, or does not fit the model or data."""


class DataError(EdgemedError):
    """Input data cannot be read or does not fit the model (missing file, NaN, wrong labels...)."""


class InputError(EdgemedError):
    """An array handed to a model does not match its input spec."""


class CheckpointError(EdgemedError):
    """A checkpoint is missing, malformed, unsafe to load, or from a newer format version."""


class ModelError(EdgemedError):
    """An unknown architecture or an invalid model configuration."""


class ParityError(EdgemedError):
    """An exported model does not reproduce the original within tolerance."""


class ExportError(EdgemedError):
    """Export to ONNX failed for a reason other than parity."""


class ModelLoadError(EdgemedError):
    """An ONNX file is missing, corrupt, truncated, or fails its checksum."""


class ProviderError(EdgemedError):
    """A requested execution provider is missing, or nodes fell back to another one, in strict mode."""


class QuantizationError(EdgemedError):
    """A quantised model failed its accuracy gate, or quantisation cannot start (bad model or data)."""


class IntegrityError(ModelLoadError):
    """A model's bytes, weights, labels or metadata differ from what was recorded when it was written."""


class UnsafeFileError(CheckpointError):
    """A file that would run code while loading (pickle, .pt2, TorchScript), without the opt-in."""


class LimitError(EdgemedError):
    """An input exceeds a resource limit (file size, decompressed size, header length, rate, threads)."""


class OutputError(EdgemedError):
    """A model produced outputs that cannot be trusted (NaN or Inf)."""


class OverwriteError(EdgemedError):
    """An output would replace a file or folder edgemed did not create, or one of the command's own inputs."""


class BundleError(EdgemedError):
    """A bundle with a missing, altered, unsafe or unloadable file."""


class AcceptanceError(BundleError):
    """A bundle's reference inputs and outputs cannot be replayed (malformed or not the model's)."""


class OptionError(EdgemedError):
    """Arguments that cannot go together, or one that is missing (the CLI shows it as a usage error)."""
