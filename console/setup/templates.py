"""Module templates (resources/templates/*.toml): one ``[[module]]`` each, for the common
cases (a VM, a directory with a service, a database), written with exactly the keys the
agents' configuration accepts. The wizard offers them when an application is added: the
form is prefilled from the template, and the module keeps the template's other settings
(timeouts, write cache, checkers).

A template's first comment line is its title, the comment lines up to the first blank
line its description.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path

from console.resources import resources_dir
from console.setup.cluster_toml import module_plan
from console.setup.plan import CheckerPlan, ModulePlan


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class ModuleTemplate:
    key: str  # the file's name without .toml
    title: str
    description: str
    plan: ModulePlan  # as written in the file (its VIP an example)

    @property
    def kind(self) -> str:
        return self.plan.kind

    def checkers(self) -> list[CheckerPlan]:
        """The template's checkers a new module takes. Interface checkers are left out:
        they name the example's interface, and the wizard watches the real interface of
        the module's VIP by itself."""
        return [copy.deepcopy(c) for c in self.plan.checkers if c.kind != "interface"]

    def settings(self) -> dict[str, object]:
        """The module keys besides those the wizard's form edits (timeouts, write_cache,
        async, a VM's guest_agent...)."""
        return copy.deepcopy(self.plan.extra)


def default_templates_dir() -> Path:
    return resources_dir() / "templates"


def _header(text: str) -> tuple[str, str]:
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw.lstrip("#").strip())
    if not lines or not lines[0]:
        raise TemplateError("the first line must be a comment: the template's title")
    return lines[0], " ".join(x for x in lines[1:] if x)


def parse_template(text: str, key: str) -> ModuleTemplate:
    """One template; TemplateError naming ``key`` and what is wrong."""
    try:
        doc = tomllib.loads(text)
        title, description = _header(text)
    except (tomllib.TOMLDecodeError, TemplateError) as e:
        raise TemplateError(f"template {key}: {e}") from None
    modules = doc.get("module")
    if set(doc) != {"module"} or not isinstance(modules, list) or len(modules) != 1:
        raise TemplateError(f"template {key}: must hold exactly one [[module]] and nothing else")
    plan = module_plan(modules[0])
    if plan.kind not in ("app", "vm"):
        raise TemplateError(f'template {key}: module.kind must be "app" or "vm"')
    return ModuleTemplate(key, title, description, plan)


def load_templates(directory: Path | None = None) -> list[ModuleTemplate]:
    """Every template of ``directory`` (default: the resources'), by file name; [] when
    the directory does not exist."""
    directory = directory or default_templates_dir()
    if not directory.is_dir():
        return []
    return [
        parse_template(p.read_text(encoding="utf-8"), p.stem)
        for p in sorted(directory.glob("*.toml"))
    ]
