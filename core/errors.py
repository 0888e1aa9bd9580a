"""One error hierarchy for every stage, so callers can catch `EdgemedError` and the CLI can turn it into a message."""


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
