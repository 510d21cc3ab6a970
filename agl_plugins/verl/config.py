"""The ``agl`` section of a verl config: how the rollout phase runs through agl.

Everything else in the config is verl's own (``data``, ``actor_rollout_ref``, ``algorithm``,
``trainer``, ...), read by verl under its own keys. The section (defaults shown)::

    agl:
      store: null                 # agl-server host:port (null: $AGL_SERVER_ADDRESS or 127.0.0.1:4747);
                                  # under agl's Trainer the Trainer's store is used and this must stay null
      workers: ray                # ray: verl's Ray worker groups (FSDP/Megatron actor, vLLM replicas);
                                  # local: one in-process actor on this machine (CPU), no Ray (tests, debugging)
      backends: []                # OpenAI-compatible servers (base URLs) that answer the rollouts' LLM calls
                                  # instead of verl's replicas (their weights are not updated): debugging only
      llm_proxy: {host: 127.0.0.1, port: 0, request_token_ids: true, retry_after: 10.0, read_timeout: 600.0}
                                  # host 0.0.0.0 for runners on other machines (advertised as the node IP)
      rollout:
        resource_name: main_llm   # name of the ProxyLLM resource runners read
        # The store's RolloutConfig; null keys inherit: under agl's Trainer from its rollout_config,
        # standalone from {timeout_seconds: null, unresponsive_seconds: null, max_attempts: 1,
        # retry_condition: [timeout, unresponsive]}.
        timeout_seconds: null     # per attempt; the store's watchdog marks it timeout
        unresponsive_seconds: null  # without a span or heartbeat; marked unresponsive
        max_attempts: null        # attempts per rollout, the first included
        retry_condition: null     # attempt statuses that retry while attempts remain
        step_timeout: 3600.0      # deadline of one gen phase: rollouts not finished by then are cancelled
        reward_fill_value: 0.0    # final reward of a succeeded rollout that emitted none (null: drop it)
        min_success_fraction: 0.0 # fewer finished rollouts than this fraction: the step is skipped
      trace_aggregator:
        level: transition         # or trajectory
        reward_placement: final   # or per_call
        trajectory_max_prompt_length: null   # trajectory level (null: data.max_prompt_length)
        trajectory_max_response_length: null # trajectory level (null: data.max_response_length)
      credit:
        level: sample             # GRPO groups samples (verl's); rollout: groups the n rollouts of a task
        rollout_mean_loss: false  # true: a rollout's k samples each weigh 1/k in the loss
                                  # (see agl_plugins/verl/credit.py for the rules and the default)
      adapter: {reward_match: first_after, agent_match: null, llm_call_match: null}
      val_n: 1                    # rollouts per validation sample
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agl_core.adapter import RewardMatchPolicy, TracerTraceToTriplet
from agl_core.types import AttemptStatus, RolloutConfig
from agl_plugins.verl.batch import AggregationLevel, RewardPlacement
from agl_plugins.verl.credit import CreditLevel


class ConfigError(ValueError):
    """A key of the ``agl`` section is unknown or has a wrong value."""


@dataclass(kw_only=True)
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 0
    request_token_ids: bool = True
    retry_after: float = 10.0
    read_timeout: float | None = 600.0


@dataclass(kw_only=True)
class RolloutSettings:
    """How rollouts of one step run and what happens to those that fail (see the module docstring)."""

    resource_name: str = "main_llm"
    timeout_seconds: float | None = None
    unresponsive_seconds: float | None = None
    max_attempts: int | None = None
    retry_condition: list[str] | None = None
    step_timeout: float = 3600.0
    reward_fill_value: float | None = 0.0
    min_success_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"agl.rollout.max_attempts must be at least 1, not {self.max_attempts}")
        if self.step_timeout <= 0:
            raise ConfigError(f"agl.rollout.step_timeout must be positive, not {self.step_timeout}")
        if not 0.0 <= self.min_success_fraction <= 1.0:
            raise ConfigError(
                f"agl.rollout.min_success_fraction must be within [0, 1], not {self.min_success_fraction}"
            )
        known = {s.value for s in AttemptStatus}
        bad = [s for s in self.retry_condition or () if s not in known]
        if bad:
            raise ConfigError(f"agl.rollout.retry_condition has {bad}; use attempt statuses: {sorted(known)}")

    def rollout_config(self, base: RolloutConfig | None = None) -> RolloutConfig:
        """The store's per-rollout policy (timeouts and retries applied by agl-server's watchdog):
        the keys set here over ``base`` (the Trainer's ``rollout_config``; None: the standalone
        default, one attempt)."""
        base = base if base is not None else STANDALONE_ROLLOUT_CONFIG
        return RolloutConfig(
            timeout_seconds=self.timeout_seconds if self.timeout_seconds is not None else base.timeout_seconds,
            unresponsive_seconds=(
                self.unresponsive_seconds if self.unresponsive_seconds is not None else base.unresponsive_seconds
            ),
            max_attempts=self.max_attempts if self.max_attempts is not None else base.max_attempts,
            retry_condition=[
                AttemptStatus(s)
                for s in (self.retry_condition if self.retry_condition is not None else base.retry_condition)
            ],
        )


STANDALONE_ROLLOUT_CONFIG = RolloutConfig(
    max_attempts=1, retry_condition=[AttemptStatus.TIMEOUT, AttemptStatus.UNRESPONSIVE]
)


@dataclass(kw_only=True)
class AggregatorSettings:
    level: str = AggregationLevel.TRANSITION.value
    reward_placement: str = RewardPlacement.FINAL.value
    trajectory_max_prompt_length: int | None = None
    trajectory_max_response_length: int | None = None

    def __post_init__(self) -> None:
        for name, enum in (("level", AggregationLevel), ("reward_placement", RewardPlacement)):
            value = getattr(self, name)
            if value not in {e.value for e in enum}:
                raise ConfigError(f"agl.trace_aggregator.{name} is {value!r}; use one of {[e.value for e in enum]}")


@dataclass(kw_only=True)
class CreditSettings:
    level: str = CreditLevel.SAMPLE.value
    rollout_mean_loss: bool = False

    def __post_init__(self) -> None:
        if self.level not in {e.value for e in CreditLevel}:
            raise ConfigError(f"agl.credit.level is {self.level!r}; use one of {[e.value for e in CreditLevel]}")


@dataclass(kw_only=True)
class AdapterSettings:
    reward_match: str = RewardMatchPolicy.FIRST_AFTER.value
    agent_match: str | None = None
    llm_call_match: str | None = None

    def build(self) -> TracerTraceToTriplet:
        try:
            return TracerTraceToTriplet(
                reward_match=self.reward_match,
                agent_match=self.agent_match,
                llm_call_match=self.llm_call_match,
                skip_without_token_ids=True,
            )
        except ValueError as exc:
            raise ConfigError(f"agl.adapter: {exc}") from None


@dataclass(kw_only=True)
class AglSettings:
    """The whole ``agl`` section."""

    store: str | None = None
    workers: str = "ray"
    backends: list[str] = field(default_factory=list)
    llm_proxy: ProxySettings = field(default_factory=ProxySettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    trace_aggregator: AggregatorSettings = field(default_factory=AggregatorSettings)
    credit: CreditSettings = field(default_factory=CreditSettings)
    adapter: AdapterSettings = field(default_factory=AdapterSettings)
    val_n: int = 1

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> AglSettings:
        """Read the section (a dict or an OmegaConf node); unknown keys are errors, not ignored."""
        return _build(cls, _plain(section or {}), "agl")

    def __post_init__(self) -> None:
        if self.workers not in WORKER_MODES:
            raise ConfigError(f"agl.workers is {self.workers!r}; use one of {list(WORKER_MODES)}")
        if isinstance(self.backends, str):
            self.backends = [self.backends]


WORKER_MODES = ("ray", "local")


T = TypeVar("T")


def _plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # omegaconf comes with verl; plain dicts work without it
        pass
    return value


def _build(kind: type[T], values: Mapping[str, Any], where: str) -> T:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        nested = {
            "llm_proxy": ProxySettings,
            "rollout": RolloutSettings,
            "trace_aggregator": AggregatorSettings,
            "credit": CreditSettings,
            "adapter": AdapterSettings,
        }.get(name)
        kwargs[name] = _build(nested, value, f"{where}.{name}") if nested and kind is AglSettings else value
    try:
        return kind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


__all__ = [
    "AdapterSettings",
    "AggregatorSettings",
    "AglSettings",
    "ConfigError",
    "CreditSettings",
    "ProxySettings",
    "RolloutSettings",
]
