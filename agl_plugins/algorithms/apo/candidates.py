"""Prompt candidates and their history, kept in the store as resources sets.

Every candidate is a resources set of its own (id ``apo-<run>-r<round>-<n>``, the seed's
``apo-<run>-seed``): the initial resources with the candidate's prompt in place of the seed, plus
a :class:`~agl_core.types.CustomResource` named :data:`CANDIDATE_RESOURCE` (type
:data:`CANDIDATE_TYPE`) that records where the candidate came from (its parent, the critique that
produced it, the rollouts the critique read, the round) and every score it got. Each new score
updates the set, so its versions are the candidate's history; rollouts carry the set's id and
``apo.*`` metadata (run, candidate, round, purpose).

:func:`load_history` reads a run back from any store, so a person can see why the final prompt
won (``python -m agl_plugins.algorithms.apo history`` prints it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from agl_core.types.resources import CustomResource, PromptTemplate, Resource, ResourcesUpdate

CANDIDATE_RESOURCE = "apo_candidate"
CANDIDATE_TYPE = "agl.apo.candidate"
PAGE = 500


@dataclass
class Score:
    """One evaluation of a candidate.

    :ivar split: ``val_batch`` (the round's validation batch, what the beam is ranked by),
        ``val_full`` (the whole validation set, what the best prompt is chosen by) or
        ``train_batch`` (a training batch whose rollouts a critique read).
    """

    round: int
    split: str
    score: float
    n: int
    failed: int


@dataclass
class Gradient:
    """What a candidate's critique was computed from."""

    rollout_ids: list[str]
    parent_score: float
    critique_template: str
    edit_template: str


@dataclass
class Candidate:
    """A prompt template APO has tried, with its lineage and scores."""

    candidate_id: str
    run_id: str
    round: int
    template: str
    engine: str
    resource_name: str
    parent_id: str | None = None
    critique: str | None = None
    gradient: Gradient | None = None
    scores: list[Score] = field(default_factory=list)
    in_beam: bool = False
    final: bool = False

    @property
    def prompt(self) -> PromptTemplate:
        return PromptTemplate(template=self.template, engine=self.engine)  # type: ignore[arg-type]

    def latest(self, split: str) -> Score | None:
        found = [s for s in self.scores if s.split == split]
        return found[-1] if found else None

    @property
    def batch_score(self) -> float | None:
        """The score of the latest validation batch (what the beam is ranked by)."""
        latest = self.latest("val_batch")
        return latest.score if latest is not None else None

    @property
    def full_score(self) -> float | None:
        """The latest score on the whole validation set."""
        latest = self.latest("val_full")
        return latest.score if latest is not None else None

    def record(self) -> dict[str, Any]:
        """The candidate as stored (JSON values)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Candidate:
        data = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        gradient = data.pop("gradient", None)
        scores = data.pop("scores", None) or ()
        data["round"] = int(data["round"])  # stored values are JSON: numbers come back as floats
        return cls(
            **data,
            gradient=Gradient(**gradient) if isinstance(gradient, Mapping) else None,
            scores=[
                Score(int(s["round"]), str(s["split"]), float(s["score"]), int(s["n"]), int(s["failed"]))
                for s in scores
            ],
        )

    def resources(self, base: Mapping[str, Resource]) -> dict[str, Resource]:
        """The candidate's resources set: ``base`` with this prompt and this record."""
        return {
            **base,
            self.resource_name: self.prompt,
            CANDIDATE_RESOURCE: CustomResource(type=CANDIDATE_TYPE, value=self.record()),
        }


async def publish(store: Any, candidate: Candidate, base: Mapping[str, Resource]) -> ResourcesUpdate:
    """Store a new candidate as its own resources set."""
    return await store.add_resources(candidate.resources(base), resources_id=candidate.candidate_id)  # type: ignore[no-any-return]


async def update(store: Any, candidate: Candidate, base: Mapping[str, Resource]) -> ResourcesUpdate:
    """Store a candidate's new scores (a new version of its set)."""
    return await store.update_resources(candidate.candidate_id, candidate.resources(base))  # type: ignore[no-any-return]


def candidate_of(update: ResourcesUpdate) -> Candidate | None:
    """The candidate a resources set holds (None for sets APO did not write)."""
    resource = update.resources.get(CANDIDATE_RESOURCE)
    if not isinstance(resource, CustomResource) or resource.type != CANDIDATE_TYPE:
        return None
    if not isinstance(resource.value, Mapping):
        return None
    return Candidate.from_record(resource.value)


async def load_history(store: Any, run_id: str | None = None) -> list[Candidate]:
    """Every candidate of an APO run, in the order they were created.

    :param run_id: the run (None: the run of the most recently updated candidate).
    """
    found: list[tuple[float, Candidate]] = []
    offset = 0
    while True:
        page = await store.query_resources(sort_by="create_time", limit=PAGE, offset=offset)
        for update in page:
            candidate = candidate_of(update)
            if candidate is not None:
                found.append((update.update_time, candidate))
        offset += len(page)
        if not page or offset >= page.total:
            break
    if run_id is None and found:
        run_id = max(found, key=lambda pair: pair[0])[1].run_id
    return [c for _, c in found if c.run_id == run_id]


def lineage(candidates: list[Candidate], candidate_id: str) -> list[Candidate]:
    """The chain from the seed to ``candidate_id``."""
    by_id = {c.candidate_id: c for c in candidates}
    chain: list[Candidate] = []
    current = by_id.get(candidate_id)
    while current is not None and current not in chain:
        chain.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return chain[::-1]


def _score(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "  -  "


def format_history(candidates: list[Candidate]) -> str:
    """A report a person can read: every candidate with its scores, then how the winner came about."""
    if not candidates:
        return "no APO candidates found"
    lines = [f"APO run {candidates[0].run_id}: {len(candidates)} candidates", ""]
    lines.append(f"{'candidate':<28} {'round':>5} {'parent':<28} {'val batch':>9} {'val full':>9}  beam")
    for c in candidates:
        mark = "final" if c.final else ("yes" if c.in_beam else "")
        lines.append(
            f"{c.candidate_id:<28} {c.round:>5} {c.parent_id or '-':<28} {_score(c.batch_score):>9} "
            f"{_score(c.full_score):>9}  {mark}"
        )
    final = next((c for c in candidates if c.final), None)
    if final is not None:
        lines += ["", f"How {final.candidate_id} came about:"]
        for c in lineage(candidates, final.candidate_id):
            lines.append("")
            lines.append(f"--- {c.candidate_id} (round {c.round}, val full {_score(c.full_score)}) ---")
            if c.critique:
                evidence = (
                    f" (read {len(c.gradient.rollout_ids)} rollouts of the parent, which scored "
                    f"{c.gradient.parent_score:.3f} on them)"
                    if c.gradient
                    else ""
                )
                lines.append(f"critique{evidence}:")
                lines.extend("  " + line for line in c.critique.strip().splitlines())
            lines.append("prompt:")
            lines.extend("  " + line for line in c.template.splitlines())
    return "\n".join(lines)
