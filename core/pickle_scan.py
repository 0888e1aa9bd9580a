"""What a pickle would import, found by reading its opcodes without running it (stdlib `pickletools`).

Used to tell a plain-data checkpoint from a file whose loading runs code, and to say which class or function it
would run, before anything is loaded.
"""

from __future__ import annotations

import io
import pickletools

from edgemed.core.errors import CheckpointError

# Globals a torch checkpoint of plain types and tensors needs; anything else is code the file asks to run.
TENSOR_GLOBALS = {
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Size", "torch.device",
    "torch.serialization._get_layout", "torch._tensor._rebuild_from_type_v2", "_codecs.encode", "builtins.set",
    "torch._utils._rebuild_device_tensor_from_numpy", "torch._utils._rebuild_meta_tensor_no_storage",
    "__builtin__.set",
}
TENSOR_GLOBAL_PREFIXES = ("torch.", )  # storage and dtype classes: torch.FloatStorage, torch.float32...
STORAGE_SUFFIXES = ("Storage", "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                    "uint8", "bool", "complex64", "complex128")


def pickle_globals(data: bytes, limit: int = 100_000) -> list[str]:
    """`module.name` of every global the pickle stream references (GLOBAL, STACK_GLOBAL, INST), in order."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
            if count > limit:
                raise CheckpointError("pickle stream too long to inspect")
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(str(arg))
    except (ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(f"not a readable pickle stream ({exc})") from exc
    return found


def is_tensor_global(name: str) -> bool:
    return name in TENSOR_GLOBALS or (name.startswith(TENSOR_GLOBAL_PREFIXES) and name.endswith(STORAGE_SUFFIXES))


def code_globals(data: bytes) -> list[str]:
    """Globals beyond what plain data and tensors need: classes or functions loading would run."""
    return [g for g in pickle_globals(data) if not is_tensor_global(g)]
