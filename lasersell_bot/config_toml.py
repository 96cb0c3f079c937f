"""Every key of a ``Config`` as TOML that a person can read and extend.

``config.dump_config`` is the compact round trip; this is what ``init`` writes for a
person: one ``[table]`` per section with every key and its value, arrays of tables as
``[[wallets]]`` blocks (never inline ``wallets = [{...}]``, which TOML cannot extend by
appending another ``[[wallets]]``), and a commented line for each key that has no
value to write: an empty secret (better kept in its environment variable or systemd
credential), an unset optional, an empty array of tables.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import tomli_w
from msgspec import Struct

from lasersell_bot.config import SECRET_SOURCES, Config, is_table_array, table_struct

_SECRETS: Final = {source.dotted_key: source for source in SECRET_SOURCES}


def render_config(cfg: Config) -> str:
    """``cfg`` as TOML with every key; ``load_config`` reads it back to ``cfg``."""
    blocks: list[list[str]] = []
    for field in msgspec.structs.fields(Config):
        _render_field(blocks, field.name, field.type, getattr(cfg, field.name))
    return "\n".join("\n".join(block) + "\n" for block in blocks)


def _render_field(blocks: list[list[str]], dotted: str, annotation: Any, value: Any) -> None:
    struct = table_struct(annotation)
    if struct is None:
        return
    if not is_table_array(annotation):
        _render_table(blocks, dotted, value)
    elif value:
        for item in value:
            _render_table(blocks, dotted, item, header=f"[[{dotted}]]")
    else:
        blocks.append(_commented_example(dotted, struct))


def _commented_example(dotted: str, struct: type[Struct]) -> list[str]:
    """An empty array of tables: one commented entry with every key, to copy."""
    lines = [f"# [[{dotted}]]   (none yet: one such table per entry; remove the '# ')"]
    for field in msgspec.structs.fields(struct):
        if field.required:
            lines.append(f"# {field.name} =   (required)")
        else:
            lines.append(f"# {_key_line(f'{dotted}.{field.name}', field.name, field.default)}")
    return lines


def _render_table(blocks: list[list[str]], dotted: str, table: Struct,
                  header: str | None = None) -> None:
    lines = [header or f"[{dotted}]"]
    nested: list[tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(type(table)):
        value = getattr(table, field.name)
        key = f"{dotted}.{field.name}"
        if table_struct(field.type) is not None:
            nested.append((key, field.type, value))
        else:
            lines.append(_key_line(key, field.name, value))
    blocks.append(lines)
    for key, annotation, value in nested:
        _render_field(blocks, key, annotation, value)


def _key_line(dotted: str, name: str, value: Any) -> str:
    secret = _SECRETS.get(dotted)
    if secret is not None and value == "":
        return (f'# {name} = ""  (secret: prefer the environment variable '
                f"{secret.env_var} or the systemd credential {secret.credential})")
    if value is None:
        return f"# {name} =   (unset; see config/example.toml)"
    return tomli_w.dumps({name: msgspec.to_builtins(value)}).rstrip("\n")
