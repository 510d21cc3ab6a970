"""A CPU platform for verl (``VERL_PLATFORM=cpu``), registered through verl's platform registry.

verl 0.9.1 ships CUDA, NPU and ROCm platforms only. This one lets its trainer, workers and FSDP
engine run on the CPU: devices are ``"cpu"``, collectives use gloo, and what verl asks of the
device module (``torch.cuda`` on GPUs: memory statistics, streams, RNG state, ...) is answered by
:class:`CpuDeviceModule`. Ray placement is unchanged: verl asks Ray for ``GPU`` bundles, so the
Ray cluster declares as many (virtual) GPUs as the trainer uses (``ray_kwargs.ray_init.num_gpus``
in the CPU preset); on CPU they are only slots, no device is behind them.

Auto-detection never picks this platform: a process runs on it only when ``VERL_PLATFORM=cpu``
says so (the CPU preset sets it for every Ray worker), so installing agl changes nothing for
verl on GPU machines.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _memory() -> tuple[int, int]:
    """(available, total) bytes of RAM: what ``mem_get_info`` reports for a GPU's memory."""
    try:
        import psutil

        info = psutil.virtual_memory()
        return int(info.available), int(info.total)
    except ImportError:  # psutil comes with ray; this is only a fallback
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, pages * size


class CpuDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the parts of the ``torch.cuda`` API verl calls, answered for the CPU.

    Memory statistics are 0 (the CPU allocator keeps none), ``mem_get_info`` is the machine's RAM,
    RNG state is torch's global generator, and anything else verl might ask (cache control,
    allocator settings, IPC) is a no-op returning None.
    """

    def __init__(self) -> None:
        super().__init__("agl_cpu_device")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if hasattr(torch.cpu, name) and name not in ("current_device", "set_device"):
            return getattr(torch.cpu, name)
        answers: dict[str, Callable[..., Any]] = {
            "is_available": lambda: True,
            "device_count": lambda: 1,
            "current_device": lambda: "cpu",
            "get_device_name": lambda *a: "CPU",
            "mem_get_info": lambda *a: _memory(),
            "manual_seed": torch.manual_seed,
            "manual_seed_all": torch.manual_seed,
            "get_rng_state": lambda *a: torch.get_rng_state(),
            "set_rng_state": lambda state, *a: torch.set_rng_state(state),
            "get_device_capability": lambda *a: (None, None),
        }
        if name in answers:
            return answers[name]
        if "memory" in name or name.startswith("max_memory"):
            return lambda *args, **kwargs: 0
        return lambda *args, **kwargs: None


_DEVICE_MODULE = CpuDeviceModule()


class PlatformCPU(PlatformBase):
    """verl's platform interface for the CPU (see the module docstring)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Chosen only by VERL_PLATFORM=cpu, never by auto-detection (see the module docstring).
        return False

    def current_device(self) -> Any:
        # verl moves modules with ``.to(get_device_id())``: an index would mean a CUDA device.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"  # what Ray sets for the virtual GPU slots; nothing reads it here

    @contextlib.contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return "GPU"  # virtual slots (see the module docstring): verl's resource checks count "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register() -> None:
    """Register the platform under ``cpu`` (idempotent)."""
    if PlatformRegistry.get(PLATFORM_NAME) is not PlatformCPU:
        PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)
    if os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME:
        patch_process_group_backend()


def dedupe_backend(backend: str | None) -> str | None:
    """``"cpu:gloo,cpu:gloo"`` -> ``"cpu:gloo"``: verl names its process-group backend
    ``cpu:gloo,<device>:<backend>``, which torch refuses when the device is the CPU too."""
    if not isinstance(backend, str) or "," not in backend:
        return backend
    return ",".join(dict.fromkeys(part.strip() for part in backend.split(",")))


def patch_process_group_backend() -> None:
    """Make torch accept verl's backend string on the CPU (see :func:`dedupe_backend`); idempotent.

    verl calls ``torch.distributed.init_process_group`` from its workers with that string and
    offers no setting for it, so the call is wrapped; only processes on this platform wrap it.
    """
    import torch.distributed as dist

    if getattr(dist.init_process_group, "_agl_cpu", False):
        return
    original = dist.init_process_group

    def init_process_group(backend: Any = None, *args: Any, **kwargs: Any) -> Any:
        if "backend" in kwargs:
            kwargs["backend"] = dedupe_backend(kwargs["backend"])
            return original(*args, **kwargs)
        return original(dedupe_backend(backend), *args, **kwargs)

    init_process_group._agl_cpu = True  # type: ignore[attr-defined]
    dist.init_process_group = init_process_group


def register_fsdp_engine() -> None:
    """verl registers its FSDP engines for cuda and npu only; the same engine runs on the CPU."""
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        for backend in ("fsdp", "fsdp2"):
            if "cpu" not in EngineRegistry._engines.get(model_type, {}).get(backend, {}):
                EngineRegistry.register(model_type=model_type, backend=backend, device="cpu")(engine)


__all__ = [
    "PLATFORM_NAME",
    "CpuDeviceModule",
    "PlatformCPU",
    "dedupe_backend",
    "patch_process_group_backend",
    "register",
    "register_fsdp_engine",
]
