"""A memory cap for onnxruntime on the CPU: every session of the process allocates from one shared arena of at
most the `engine_mb` limit (EDGEMED_MAX_ENGINE_MB), so a graph that asks for more (a ConstantOfShape, Tile or
Expand of billions of values sized from the input) fails that allocation, a LimitError, instead of taking the
machine's memory and the bedside monitor with it (the kernel's OOM killer chooses the biggest process).

The arena is registered once per process, by the first session edgemed makes, with the limit read then; the
sessions share its free memory, so models loaded together fit in less than their arenas apart would need.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from edgemed.core.errors import LimitError
from edgemed.core.limits import LIMITS, limit

if TYPE_CHECKING:
    import onnxruntime as ort

_cap_mb: float | None = None
_lock = threading.Lock()


def use_shared_arena(opts: ort.SessionOptions) -> None:
    """Make sessions created with `opts` allocate from the capped arena (registered on first use)."""
    global _cap_mb
    import onnxruntime as ort

    with _lock:
        if _cap_mb is None:
            cap = limit("engine_mb")
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({"max_mem": int(cap * 2**20)}))
            _cap_mb = cap
    opts.add_session_config_entry("session.use_env_allocators", "1")


def out_of_memory(exc: BaseException) -> bool:
    """Whether onnxruntime failed because an allocation was refused (by the cap, or by the system)."""
    text = str(exc)
    return "Failed to allocate memory" in text or "BFCArena::AllocateRawInternal" in text


def memory_error(what: str) -> LimitError:
    env = LIMITS["engine_mb"].env
    return LimitError(f"{what} needed more memory than onnxruntime may hold in this process ({_cap_mb or 0:,g} MB, "
                      f"every loaded model included); set {env} before the first model loads to raise it if the "
                      "model is genuine")
