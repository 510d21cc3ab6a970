"""The chat prompts APO sends to its critique and edit models, as editable template files.

A template file is TOML with a list of messages whose ``content`` is a Jinja2 template::

    description = "what this prompt asks for"

    [[messages]]
    role = "system"
    content = '''You review prompt templates ...'''

    [[messages]]
    role = "user"
    content = '''{{ prompt_template }} ... {% for experiment in experiments %} ... {% endfor %}'''

Rendering is strict: a variable the template uses but APO does not supply is an error naming the
file, not silently empty text. The files shipped with the plugin live in ``prompts/`` beside this
module; :func:`load_templates` takes a user's own files (a path, or several to pick from at
random for diversity) in their place.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from agl_core.types.resources import PromptTemplate, PromptTemplateEngine

ROLES = ("system", "developer", "user", "assistant")
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # the output is a chat message, not HTML
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


class TemplateError(ValueError):
    """A template file that cannot be read, parsed or rendered; the message names the file."""


@dataclass(frozen=True)
class ChatTemplate:
    """A chat prompt: messages whose contents are Jinja2 templates.

    :ivar name: the file's name (recorded with each candidate, so a person sees which prompt made it).
    :ivar path: where it was read from.
    """

    name: str
    path: str
    description: str
    messages: tuple[tuple[str, jinja2.Template], ...]

    @classmethod
    def from_text(cls, text: str, *, name: str, path: str = "") -> ChatTemplate:
        where = path or name
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TemplateError(f"template {where}: not valid TOML ({exc})") from exc
        raw = data.get("messages")
        if not isinstance(raw, list) or not raw:
            raise TemplateError(f"template {where}: needs a non-empty [[messages]] list (each with role and content)")
        messages = []
        for i, message in enumerate(raw, 1):
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise TemplateError(f"template {where}: message {i} has role {role!r}; use one of {', '.join(ROLES)}")
            if not isinstance(content, str) or not content.strip():
                raise TemplateError(f"template {where}: message {i} needs a non-empty content string")
            try:
                messages.append((role, _ENV.from_string(content)))
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"template {where}: message {i}, line {exc.lineno}: {exc.message}") from exc
        return cls(name=name, path=path, description=str(data.get("description", "")), messages=tuple(messages))

    @classmethod
    def load(cls, path: str | Path) -> ChatTemplate:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"template {path}: cannot be read ({exc.strerror or exc})") from exc
        return cls.from_text(text, name=path.name, path=str(path))

    def render(self, **context: Any) -> list[dict[str, str]]:
        """The chat messages for ``context``."""
        rendered = []
        for i, (role, template) in enumerate(self.messages, 1):
            try:
                rendered.append({"role": role, "content": template.render(**context).strip()})
            except jinja2.UndefinedError as exc:
                raise TemplateError(
                    f"template {self.path or self.name}: message {i} uses {exc.message}; "
                    f"the variables available are {', '.join(sorted(context))}"
                ) from exc
        return rendered


def builtin_template(name: str) -> ChatTemplate:
    """A template shipped with the plugin (``critique.toml``, ``edit.toml``)."""
    source = resources.files(__package__).joinpath("prompts").joinpath(name)
    return ChatTemplate.from_text(source.read_text(encoding="utf-8"), name=name, path=str(source))


def load_templates(spec: str | Path | Sequence[str | Path] | None, default: str) -> list[ChatTemplate]:
    """The templates to pick from: the user's file(s), else the shipped ``default``."""
    if spec is None:
        return [builtin_template(default)]
    paths = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not paths:
        raise TemplateError(f"no template files given (leave the option unset to use the shipped {default})")
    return [ChatTemplate.load(p) for p in paths]


# --- the fields a prompt template expects ------------------------------------------------------------


def template_fields(prompt: PromptTemplate) -> set[str]:
    """The names a prompt template is formatted with (``{question}`` -> ``question``).

    :raises ValueError: when the template cannot be parsed (unbalanced braces, bad Jinja).
    """
    if prompt.engine == PromptTemplateEngine.JINJA:
        try:
            return set(jinja2.meta.find_undeclared_variables(_ENV.parse(prompt.template)))
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.message}") from exc
    fields = set()
    for _text, field, _spec, _conversion in string.Formatter().parse(prompt.template):
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root or root.isdigit():
            raise ValueError("positional fields ({} or {0}) cannot be filled; name every field")
        fields.add(root)
    return fields
