"""Which other member of a union has a field that pydantic reports as an extra input of the
chosen one (``+model.channels=3`` while ``model=mlp``: "a field of model=cnn")."""

from __future__ import annotations

import typing as tp

from .schema import fields_of


def other_member_note(model: type, loc: tp.Sequence[tp.Any]) -> str | None:
    """The note for pydantic's error location ``loc`` (``("model", "mlp", "channels")``: a
    discriminated union puts the tag after the field), None if no other member has that field."""
    cls, group, index = model, "", 0
    while index < len(loc) - 1:
        part = str(loc[index])
        field = next((f for f in fields_of(cls) if f.key == part or f.name == part), None)
        if field is None:
            return None
        group = f"{group}/{field.key}" if group else field.key
        if field.union is not None:
            member = field.union.member(str(loc[index + 1]))
            if member is None:
                return None
            name = str(loc[-1])
            if index + 2 == len(loc) - 1 and name not in {f.key for f in fields_of(member)}:
                having = [tag for tag, other in field.union.members if name in {f.key for f in fields_of(other)}]
                if having:
                    return f"'{name}' is a field of {' or '.join(f'{group}={t}' for t in having)}: select it with {group}={having[0]}"
                return None
            cls, index = member, index + 2
            continue
        if field.sub is None:
            return None
        cls, index = field.sub, index + 1
    return None
