"""docs/configuration.md, generated from the Settings object (`make docs`; a test fails when it is stale)."""

from __future__ import annotations

import sys
from typing import Any

from pydantic.fields import FieldInfo

from services.settings import GROUPS, PREFIX, Settings, env_name, grouped_fields

HEADER = """# Configuration

Every setting is an environment variable (a `.env` file in the working directory works too). This page is
generated from `services/settings.py` by `make docs`; edit the settings' descriptions there, not here.
In code the settings are grouped (`settings.als.factors`); the variables keep their flat names, which also
work as keyword arguments (`Settings(als_factors=8)`) and in `tuned.json`, where `nextwatch tune` writes
the values it chose (an explicit setting wins over a tuned one). "Empty" is a variable set to nothing
(`NEXTWATCH_LEARNED_MAX_SECONDS=`): a setting whose type admits None is then None, whatever its default.
"""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is None or value == "" or value == []:
        return "(empty)"
    return f"`{value}`"


def _type(info: FieldInfo) -> str:
    text = str(info.annotation)
    for noise in ("typing.", "pathlib.", "pydantic.types.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(env: str, info: FieldInfo) -> str:
    return f"| `{env}` | {_cell(_type(info))} | {_default(info)} | {_cell(info.description or '')} |"


def render() -> str:
    """The whole page."""
    table = "| variable | type | default | what it does |\n|---|---|---|---|"
    lines = [HEADER, "## General\n", table]
    for name, info in Settings.model_fields.items():
        if name not in GROUPS:
            lines.append(_row(PREFIX + name.upper(), info))
    for group, model in GROUPS.items():
        doc = " ".join((model.__doc__ or "").split())
        lines += ["", f"## {group} (`settings.{group}`)\n", doc, "", table]
        lines += [_row(env_name(flat), info) for g, _, flat, info in grouped_fields() if g == group]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
