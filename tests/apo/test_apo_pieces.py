"""The pieces of APO on their own: template files, placeholder checks, edit clean-up, batches,
candidate records, and the errors a user gets for a wrong set-up."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from agl_core.adapter import TracerTraceToTriplet
from agl_core.types import CustomResource, PromptTemplate, ResourcesUpdate
from agl_plugins.algorithms.apo import APO, CANDIDATE_RESOURCE, Candidate, ChatTemplate, Score, TemplateError
from agl_plugins.algorithms.apo.candidates import Gradient, candidate_of, lineage
from agl_plugins.algorithms.apo.evaluation import clip, conversation
from agl_plugins.algorithms.apo.sampling import batches
from agl_plugins.algorithms.apo.steps import clean_edit
from agl_plugins.algorithms.apo.templates import builtin_template, load_templates, template_fields

EXPERIMENT = {
    "index": 1,
    "rollout_id": "ro-1",
    "status": "succeeded",
    "reward": 0.0,
    "score": 0.0,
    "input": '{"message": "two plums"}',
    "conversation": [{"role": "user", "content": "Extract: two plums"}, {"role": "assistant", "content": "Plums!"}],
    "feedback": ["scored 0/3; expected exactly: plum|2|2026-01-01"],
    "error": None,
}


# --- template files -----------------------------------------------------------------------------------


def test_the_shipped_prompts_show_the_evidence_and_the_rules() -> None:
    [critique] = load_templates(None, "critique.toml")
    messages = critique.render(prompt_template="Extract: {message}", experiments=[EXPERIMENT], mean_reward=0.0)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    for evidence in ("Extract: {message}", "assistant: Plums!", "feedback: scored 0/3", 'reward="0.0"', "two plums"):
        assert evidence in user
    [edit] = load_templates(None, "edit.toml")
    system, user = edit.render(prompt_template="A {x} {y}", critique="- do Z", fields=["x", "y"], engine="f-string")
    assert "({x}, {y})" in system["content"] and "doubled" in system["content"]
    assert "<critique>\n- do Z\n</critique>" in user["content"]
    jinja = edit.render(prompt_template="A {{ x }}", critique="-", fields=["x"], engine="jinja")
    assert "({{ x }})" in jinja[0]["content"] and "doubled" not in jinja[0]["content"]


def test_a_users_own_template_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "terse.toml"
    path.write_text(
        "[[messages]]\nrole = 'user'\ncontent = '''Fix {{ prompt_template }} given "
        "{% for e in experiments %}{{ e.reward }};{% endfor %}'''\n"
    )
    apo = APO(critique_templates=path, edit_templates=[path, path])
    [critique] = apo.critique_templates
    assert critique.name == "terse.toml" and len(apo.edit_templates) == 2
    assert critique.render(prompt_template="P", experiments=[EXPERIMENT, EXPERIMENT], mean_reward=0.0) == [
        {"role": "user", "content": "Fix P given 0.0;0.0;"}
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("messages = 3", "needs a non-empty \\[\\[messages\\]\\] list"),
        ("[[messages]]\nrole = 'robot'\ncontent = 'x'", "role 'robot'"),
        ("[[messages]]\nrole = 'user'\ncontent = '{% for x in y %}'", "message 1, line 1"),
        ("[[messages]\n", "not valid TOML"),
    ],
)
def test_a_broken_template_file_fails_before_any_rollout_and_names_the_file(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(TemplateError, match=f"template {path}.*{error}"):
        APO(critique_templates=path)
    with pytest.raises(TemplateError, match="cannot be read"):
        APO(edit_templates=tmp_path / "missing.toml")


def test_a_variable_the_template_needs_but_is_not_given_is_an_error() -> None:
    template = ChatTemplate.from_text("[[messages]]\nrole = 'user'\ncontent = '{{ nope }}'", name="t.toml")
    with pytest.raises(TemplateError, match="'nope' is undefined; the variables available are a, b"):
        template.render(a=1, b=2)


# --- prompt templates and edits ------------------------------------------------------------------------


def test_template_fields() -> None:
    assert template_fields(PromptTemplate(template="Q: {question} ({ctx.name}) {{literal}}")) == {"question", "ctx"}
    assert template_fields(PromptTemplate(template="{{ a }} {% if b %}{{ c }}{% endif %}", engine="jinja")) == {
        "a",
        "b",
        "c",
    }
    for broken in ("{question", "oops }", "{}", "{0}"):
        with pytest.raises(ValueError):
            template_fields(PromptTemplate(template=broken))
    with pytest.raises(ValueError, match="line 1"):
        template_fields(PromptTemplate(template="{% if %}", engine="jinja"))


@pytest.mark.parametrize(
    ("answer", "prompt"),
    [
        ("  Do it: {x}\n", "Do it: {x}"),
        ("```\nDo it: {x}\n```", "Do it: {x}"),
        ("```text\nDo it:\n{x}\n```", "Do it:\n{x}"),
        ("Here it is:\n<prompt_template>\nDo it: {x}\n</prompt_template>", "Do it: {x}"),
    ],
)
def test_clean_edit(answer: str, prompt: str) -> None:
    assert clean_edit(answer) == prompt


# --- batches ------------------------------------------------------------------------------------------


def test_batches_cover_every_item_each_pass_without_repeats_in_a_batch() -> None:
    items = list(range(10))
    stream = batches(items, 4, random.Random(1))
    drawn = [next(stream) for _ in range(10)]  # 40 items = 4 passes
    assert all(len(b) == 4 and len(set(b)) == 4 for b in drawn)
    flat = [x for b in drawn for x in b]
    assert sorted(flat) == sorted(items * 4)
    assert next(batches(items, 50, random.Random(1))) == items
    assert drawn != [next(batches(items, 4, random.Random(2))) for _ in range(10)]


# --- candidates and their record ----------------------------------------------------------------------


def test_a_candidate_survives_the_store_round_trip() -> None:
    from agl_core.proto import resources_pb2
    from agl_core.store import validation
    from agl_core.types import convert
    from agl_core.types.values import from_value, to_value

    candidate = Candidate(
        candidate_id="apo-x-r1-001",
        run_id="x",
        round=1,
        template="Do {x}",
        engine="f-string",
        resource_name="prompt",
        parent_id="apo-x-seed",
        critique="- be brief",
        gradient=Gradient(["ro-1", "ro-2"], 0.25, "critique.toml", "edit.toml"),
        scores=[Score(1, "val_batch", 0.5, 8, 1), Score(1, "val_full", 0.625, 16, 0)],
        in_beam=True,
    )
    pb = resources_pb2.ResourcesUpdate(resources_id=candidate.candidate_id, version=2)
    convert.resources_to_pb(candidate.resources({"other": CustomResource(type="t", value=1)}), pb.resources)
    update = convert.resources_update_from_pb(pb)
    assert isinstance(update, ResourcesUpdate) and set(update.resources) == {"other", "prompt", CANDIDATE_RESOURCE}
    assert update.resources["prompt"] == PromptTemplate(template="Do {x}")
    assert candidate_of(update) == candidate
    assert (candidate.batch_score, candidate.full_score) == (0.5, 0.625)
    seed = Candidate("apo-x-seed", "x", 0, "Do", "f-string", "prompt")
    # A fresh candidate has empty lists in its record; the store takes them as lists (it used to
    # reject a Value with no kind) and gives them back.
    pb.resources.clear()
    convert.resources_to_pb(seed.resources({}), pb.resources)
    validation.check_resources(pb.resources)
    assert candidate_of(convert.resources_update_from_pb(pb)) == seed
    assert from_value(to_value({"a": [], "b": {}})) == {"a": [], "b": {}}
    chain = lineage([candidate, seed], candidate.candidate_id)
    assert [c.candidate_id for c in chain] == ["apo-x-seed", "apo-x-r1-001"]


def test_conversation_shows_each_message_once_and_clip_keeps_both_ends() -> None:
    first = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    turn = [{"role": "user", "content": "more"}, {"role": "assistant", "content": "ok"}]
    second = {"messages": [*first["messages"], *turn]}
    other = {"messages": [{"role": "system", "content": "judge"}, {"role": "assistant", "content": "1"}]}
    lines = conversation([first, second, other])
    assert [m["content"] for m in lines] == ["hi", "hello", "more", "ok", "(a new conversation starts)", "judge", "1"]
    text = "a" * 500 + "MIDDLE" + "z" * 500
    clipped = clip(text, 200)
    assert clipped.startswith("a" * 100) and clipped.endswith("z" * 50) and "characters cut" in clipped
    assert len(clipped) < 260 and clip("short", 200) == "short"


# --- set-up errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "options", "error"),
    [
        ({}, {}, "needs a PromptTemplate to optimise"),
        ({"a": PromptTemplate(template="{x}"), "b": PromptTemplate(template="{y}")}, {}, "name the one"),
        ({"a": PromptTemplate(template="{x}")}, {"prompt_resource": "b"}, "no prompt template of that name"),
    ],
)
def test_which_prompt_to_optimise(resources: dict[str, Any], options: dict[str, Any], error: str) -> None:
    apo = APO(**options)
    apo.set_initial_resources(resources)
    with pytest.raises(ValueError, match=error):
        apo.get_seed_prompt()


def test_options_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="beam_width is 0"):
        APO(beam_width=0)
    with pytest.raises(ValueError, match="rollout_batch_timeout"):
        APO(rollout_batch_timeout=0)
    apo = APO()
    apo.set_adapter(TracerTraceToTriplet())
    with pytest.raises(TypeError, match="needs a TraceToMessages adapter"):
        apo.get_adapter()
    with pytest.raises(RuntimeError, match="has not run yet"):
        apo.get_best_prompt()


def test_the_models_and_endpoint_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGL_APO_GRADIENT_MODEL", "judge-1")
    monkeypatch.delenv("AGL_APO_EDIT_MODEL", raising=False)
    apo = APO()
    assert (apo.gradient_model, apo.edit_model) == ("judge-1", "judge-1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="set OPENAI_API_KEY"):
        apo._chat_client()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert str(apo._chat_client().client.base_url) == "http://127.0.0.1:9/v1/"  # a keyless local endpoint


def test_apo_is_an_installed_plugin() -> None:
    from agl_core.plugins import get_plugin_manager

    provided = get_plugin_manager().lookup("algorithms", "apo")
    assert provided.factory is APO and provided.plugin == "algorithm-apo"
    assert builtin_template("critique.toml").path.endswith("critique.toml")
