"""uid rules (issue 2, point 4): what enters the uid, its shape, and freezing."""

from __future__ import annotations

import re
import typing as tp

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exca_hydra import TaskInfra, compute_uid, uid_config, uid_string
from exca_hydra.cache.frozen import FrozenConfigError
from exca_hydra.cache.uid import UidError

from models import MyTask, Trainer, WithExclude

HASH = re.compile(r"-[0-9a-f]{16}$")


def test_golden_uid() -> None:
    # a change of this string silently invalidates every existing cache: change it on purpose only
    assert MyTask(x=12, y="hello").infra.uid() == "x=12,y=hello-48474a65c434ac30"
    assert MyTask(x=12).infra.config(uid=True) == {"x": 12}


def test_readable_prefix_and_hash() -> None:
    uid = MyTask(x=12, y="hello").infra.uid()
    assert uid.startswith("x=12,y=hello-")
    assert HASH.search(uid)
    nested = Trainer(model={"name": "transformer", "embeddings": 256}, optimizer="SGD").infra.uid()
    assert nested.startswith("model.embeddings=256,model.name=transformer,optimizer=SGD-")
    assert HASH.search(nested)


def test_infra_resources_excluded_but_version_included(tmp_path) -> None:
    base = MyTask(x=1).infra.uid()
    resources = {
        "folder": tmp_path,
        "cluster": "local",
        "cpus_per_task": 4,
        "gpus_per_node": 2,
        "mem_gb": 3.5,
        "timeout_min": 10,
        "slurm_partition": "p",
        "mode": "force",
        "keep_in_ram": True,
        "job_name": "name",
    }
    assert MyTask(x=1, infra=resources).infra.uid() == base
    assert "infra" not in MyTask(x=1, infra=resources).infra.config(uid=True)
    versioned = MyTask(x=1, infra={"version": "2"})
    assert versioned.infra.uid() != base
    assert versioned.infra.config(uid=True) == {"x": 1, "infra": {"version": "2"}}


def test_default_values_excluded() -> None:
    assert MyTask(x=3).infra.uid() == MyTask(x=3, y="blublu").infra.uid()
    assert "y=" not in MyTask(x=3).infra.uid()
    assert MyTask(x=3, y="other").infra.uid() != MyTask(x=3).infra.uid()


class Before(pydantic.BaseModel):
    a: int = 1
    b: str = "b"


class After(pydantic.BaseModel):  # the same config after adding a field with a default
    a: int = 1
    b: str = "b"
    c: float = 0.5
    d: list[int] = pydantic.Field(default_factory=lambda: [1, 2])


def test_adding_a_field_with_default_keeps_uid() -> None:
    for kwargs in [{}, {"a": 3}, {"a": 3, "b": "x"}]:
        assert compute_uid(After(**kwargs)) == compute_uid(Before(**kwargs))
    assert compute_uid(After(a=3, c=0.25)) != compute_uid(Before(a=3))
    assert compute_uid(After(d=[1])) != compute_uid(Before())


def test_discriminator_tags_kept() -> None:
    conv = Trainer(model={"name": "conv"})
    trans = Trainer(model={"name": "transformer"})
    # all other fields are at their defaults: only the tag distinguishes them
    assert conv.infra.config(uid=True) == {"model": {"name": "conv"}}
    assert trans.infra.config(uid=True) == {"model": {"name": "transformer"}}
    assert conv.infra.uid() != trans.infra.uid()
    assert "model.name=conv" in conv.infra.uid()


class WithDict(pydantic.BaseModel):
    params: dict[str, tp.Any] = {}
    x: float = 0.0


def test_dict_order_irrelevant() -> None:
    one = WithDict(params={"a": 1, "b": {"c": 2, "d": 3}})
    two = WithDict(params={"b": {"d": 3, "c": 2}, "a": 1})
    assert compute_uid(one) == compute_uid(two)
    assert compute_uid(one) != compute_uid(WithDict(params={"a": 1, "b": {"c": 2, "d": 4}}))


def test_floats_exact() -> None:
    small, other = WithDict(x=0.001), WithDict(x=0.0049)
    assert compute_uid(small) != compute_uid(other)
    # even when the readable prefix is the same, the hash tells them apart
    long_a = WithDict(params={"k": "z" * 60 + "a"})
    long_b = WithDict(params={"k": "z" * 60 + "b"})
    assert compute_uid(long_a).rsplit("-", 1)[0] == compute_uid(long_b).rsplit("-", 1)[0]
    assert compute_uid(long_a) != compute_uid(long_b)
    assert compute_uid(WithDict(x=1e-17)) != compute_uid(WithDict(x=1.1e-17))
    # 1 and 1.0 are different types in a dict: keep the distinction stable
    assert compute_uid(WithDict(params={"a": 1})) != compute_uid(WithDict(params={"a": 1.5}))


def _check_folder_name(uid: str) -> None:
    assert "/" not in uid and "\\" not in uid and "\x00" not in uid
    assert uid not in (".", "..")
    assert not uid.startswith(".") and not uid.startswith("-")
    assert 0 < len(uid.encode("utf8")) <= 255
    assert HASH.search(uid)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["/", "..", ".", "../..", "a/../../b", "é" * 300, "x" * 10_000, "\x00", "-rf", "~", "日本語/"]
)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(cfg=st.dictionaries(_text, _values, max_size=6))
def test_uid_is_always_a_safe_folder_name(cfg: dict[str, tp.Any]) -> None:
    uid = uid_string(uid_config(cfg))
    _check_folder_name(uid)


@settings(max_examples=50, deadline=None)
@given(params=st.dictionaries(_text, _text, max_size=4), y=_text)
def test_model_uid_never_escapes_cache_folder(params, y) -> None:
    obj = MyTask(x=1, y=y)
    _check_folder_name(obj.infra.uid())
    _check_folder_name(compute_uid(WithDict(params=params)))


def test_uid_stable_across_instances_and_calls() -> None:
    cfg = {"model": {"name": "conv", "layers": 3}, "optimizer": "SGD"}
    assert Trainer(**cfg).infra.uid() == Trainer(**cfg).infra.uid()
    assert compute_uid(Trainer(**cfg)) == Trainer(**cfg).infra.uid()


def test_exclude_from_cache_uid_dotted() -> None:
    base = WithExclude()
    assert WithExclude(opt={"seed": 12}).infra.uid() == base.infra.uid()
    assert WithExclude(debug=True).infra.uid() == base.infra.uid()
    assert WithExclude(opt={"lr": 0.2}).infra.uid() != base.infra.uid()
    assert WithExclude(opt={"lr": 0.2, "seed": 3}).infra.config(uid=True) == {"opt": {"lr": 0.2}}


class A(pydantic.BaseModel):
    a: int = 1


class B(pydantic.BaseModel):
    a: int = 1


class Ambiguous(pydantic.BaseModel):
    model: A | B = A()
    other: int = 0


def test_union_without_discriminator_raises() -> None:
    with pytest.raises(UidError, match="discriminator"):
        compute_uid(Ambiguous(model=B(a=2)))


def test_frozen_once_uid_computed() -> None:
    obj = Trainer(model={"name": "conv"})
    obj.optimizer = "SGD"  # still allowed: no uid yet
    uid = obj.infra.uid()
    assert "optimizer=SGD" in uid
    with pytest.raises(FrozenConfigError):
        obj.optimizer = "Adam"
    with pytest.raises(FrozenConfigError):
        obj.model.layers = 3  # sub-configs are frozen too
    assert obj.infra.uid() == uid and obj.optimizer == "SGD" and obj.model.layers == 12
    clone = obj.infra.clone_obj({"model.layers": 3})
    clone.optimizer = "RMSprop"  # a clone is a new, mutable object
    clone.model.layers = 4
    assert clone.infra.uid() != uid
    assert "model.layers=4" in clone.infra.uid() and "optimizer=RMSprop" in clone.infra.uid()
    assert obj.model.layers == 12


def test_freezing_does_not_leak_to_other_instances() -> None:
    frozen = MyTask(x=1)
    frozen.infra.uid()
    free = MyTask(x=1)
    free.x = 2
    assert free.infra.uid().startswith("x=2-")
