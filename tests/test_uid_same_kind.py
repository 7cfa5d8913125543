"""Issue 21: a value is left out of the uid only when it is its default's same value of the same
kind ([True] and [1.0] are not [1], -0.0 is not 0.0, a subclass is not its base), unions of
models whose options share a tag value are rejected, and the stored-config check keeps kinds."""

from __future__ import annotations

import datetime
import decimal
import enum
import pickle
import textwrap
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra, compute_uid, uid_config
from exca_hydra.cache.store import CacheError, Entry
from exca_hydra.cache.uid import UidError, identity_config

from test_launcher import Ctx


class Sub(pydantic.BaseModel):
    a: tp.Any = 1


class Defaults(pydantic.BaseModel):
    any_list: list[tp.Any] = [1]
    num_list: list[float | int] = [1]
    any_dict: dict[str, tp.Any] = {"a": 1}
    any_tuple: tuple[tp.Any, ...] = (1,)
    anything: tp.Any = (1,)
    sub: Sub = Sub()
    zero: float = 0.0
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return repr(self.model_dump(exclude={"infra"}))


OTHER_KINDS = [
    {"any_list": [True]},
    {"any_list": [1.0]},
    {"num_list": [True]},
    {"num_list": [1.0]},
    {"any_dict": {"a": True}},
    {"any_dict": {"a": 1.0}},
    {"any_tuple": (1.0,)},
    {"anything": (1.0,)},
    {"sub": Sub(a=True)},
    {"sub": Sub(a=1.0)},
    {"zero": -0.0},
]


@pytest.mark.parametrize("fields", OTHER_KINDS, ids=lambda f: repr(f))
def test_equal_under_eq_but_another_kind_is_not_the_default(fields: dict[str, tp.Any]) -> None:
    obj = Defaults(**fields)
    name = next(iter(fields))
    assert getattr(obj, name) == getattr(Defaults(), name)  # == cannot tell them apart
    assert compute_uid(obj) != compute_uid(Defaults())
    assert name in uid_config(obj)


def test_the_default_itself_and_equal_values_of_its_kind_are_left_out() -> None:
    default = compute_uid(Defaults())
    assert default == compute_uid(Defaults(any_list=[1], any_dict={"a": 1}, any_tuple=(1,), sub=Sub(a=1), zero=0.0))
    assert Defaults(zero=float("-0.0")).infra.config(uid=True) == {"zero": -0.0}


def test_cached_kinds_get_their_own_entries(tmp_path: Path) -> None:
    first = Defaults(any_dict={"a": True}, infra={"folder": tmp_path})
    assert first.run() == repr(first.model_dump(exclude={"infra"}))
    default = Defaults(infra={"folder": tmp_path})
    assert default.run() == repr(default.model_dump(exclude={"infra"}))  # not {'a': True}
    assert "'a': 1}" in default.run()


def test_the_stored_config_check_keeps_kinds(tmp_path: Path) -> None:
    planted = Defaults(any_dict={"a": True}, zero=-0.0)
    entry = Entry(tmp_path / "entry")
    entry.write_configs(planted.model_dump(mode="json"), uid_config(planted))
    for other in (Defaults(any_dict={"a": 1}, zero=-0.0), Defaults(any_dict={"a": True}, zero=0.0)):
        with pytest.raises(CacheError):
            entry.verify(uid_config(other), identity_config(other))
    entry.verify(uid_config(planted), identity_config(planted))
    # config.yaml alone (uid.yaml agrees): a bool stored where the config now holds an int
    config = entry.folder / "config.yaml"
    config.write_text(config.read_text().replace("a: true", "a: 1"))
    with pytest.raises(CacheError, match="any_dict.a"):
        entry.verify(uid_config(planted), identity_config(planted))


APP = '''
import typing as tp
import pydantic
import exca_hydra
from exca_hydra import TaskInfra


class Tagged(pydantic.BaseModel):
    tags: dict[str, tp.Any] = {"k": 1}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return repr(self.tags)


@exca_hydra.main(version_base="1.3")
def main(t: Tagged) -> str:
    result = t.run()
    print("RESULT", result)
    return result


if __name__ == "__main__":
    main()
'''


def test_cli_true_then_default_one_are_two_entries(tmp_path: Path) -> None:
    app = tmp_path / "tagged_app.py"
    app.write_text(textwrap.dedent(APP))
    ctx = Ctx(tmp_path)
    folder = f"infra.folder={tmp_path / 'cache'}"
    first = ctx.run(app, "tags.k=true", folder, multirun=False)
    assert first.code == 0, first.err
    assert "RESULT {'k': True}" in first.out
    second = ctx.run(app, folder, multirun=False)
    assert second.code == 0, second.err
    assert "RESULT {'k': 1}" in second.out


# ----- a subclass in a base-typed field -----
class Opt(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    lr: float = 0.1


class Adam(Opt):
    pass


class Holder(pydantic.BaseModel):
    opt: Opt = Opt()
    opts: list[Opt] = []
    maybe: Opt | None = None
    by_name: dict[str, Opt] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return type(self.opt).__name__


def test_a_subclass_instance_is_not_its_base() -> None:
    for fields in ({"opt": "x"}, {"opts": ["x"]}, {"maybe": "x"}, {"by_name": {"k": "x"}}):
        name = next(iter(fields))
        for lr in (0.1, 0.2):

            def build(cls: type) -> tp.Any:
                value = fields[name]
                value = [cls(lr=lr)] if isinstance(value, list) else {"k": cls(lr=lr)} if isinstance(value, dict) else cls(lr=lr)
                return Holder(**{name: value})

            assert compute_uid(build(Opt)) != compute_uid(build(Adam)), (name, lr)
    assert compute_uid(Holder(opt=Opt(lr=0.2))) == compute_uid(Holder(opt={"lr": 0.2}))


def test_a_subclass_gets_its_own_result(tmp_path: Path) -> None:
    assert Holder(opt=Adam(lr=0.2), infra={"folder": tmp_path}).run() == "Adam"
    assert Holder(opt=Opt(lr=0.2), infra={"folder": tmp_path}).run() == "Opt"


# ----- unions whose options share a tag value -----
class A(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["x"] = "x"
    v: int = 0


class B(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["x"] = "x"
    v: int = 0
    w: int = 0


class C(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["c"] = "c"
    v: int = 0


class D(pydantic.BaseModel):  # another tag name: never in A's uid
    model_config = pydantic.ConfigDict(extra="forbid")
    kind: tp.Literal["d"] = "d"
    v: int = 0


class SharedTag(pydantic.BaseModel):
    choice: A | B = A()


class OwnTags(pydantic.BaseModel):
    choice: A | C | D = A()


def test_a_union_whose_options_share_a_tag_value_is_rejected() -> None:
    with pytest.raises(UidError, match=r"SharedTag.choice.*A and B"):
        compute_uid(SharedTag(choice=B(v=1)))
    assert compute_uid(OwnTags(choice=C(v=1))) != compute_uid(OwnTags(choice=A(v=1))) != compute_uid(OwnTags(choice=D(v=1)))


# ----- a class default that changed is never served stale -----
class Part(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    depth: int = 1


class Part2(pydantic.BaseModel):  # the same fields as Part: another class
    model_config = pydantic.ConfigDict(extra="forbid")
    depth: int = 1


class Outer(pydantic.BaseModel):
    part: Part = Part()


class Letter(str, enum.Enum):
    a = "a"


def _versions(old: tp.Any, new: tp.Any, annotation: tp.Any) -> tuple[type, type]:
    def make(default: tp.Any) -> type:
        class Stale(pydantic.BaseModel):
            x: int = 1
            value: annotation = default  # type: ignore[valid-type]
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def run(self) -> str:
                return repr(self.value)

        Stale.__qualname__ = "Stale"  # the same cache folder for both versions of the class
        return Stale

    return make(old), make(new)


@pytest.mark.parametrize(
    "old, new, annotation",
    [
        (None, {"a": 1}, tp.Optional[dict[str, int]]),
        (None, Part(), tp.Optional[Part]),
        ({"a": 1}, {"b": 2}, dict[str, int]),
        ({"a": 1}, {"a": 1, "b": 2}, dict[str, int]),
        ({"a": 1}, None, tp.Optional[dict[str, int]]),
        ({"a": 1}, {"a": 2}, dict[str, int]),  # detected before too
        # redteam-uid F2: a look-alike of another kind, which config.yaml's text cannot show
        (1, 1.0, tp.Union[int, float]),
        ([1], [1.0], tp.Any),
        ((1, 2), [1, 2], tp.Any),
        ("a", Letter.a, tp.Any),
        (datetime.date(2020, 1, 1), "2020-01-01", tp.Any),
        (Path("a"), "a", tp.Union[Path, str]),
        ({1: "x"}, {"1": "x"}, tp.Any),
        ({1}, [1], tp.Any),
        (Part(), Part2(), tp.Any),
        (Outer(), Outer(part=Part.model_construct(depth=1.0)), Outer),  # a nested default of another kind
    ],
    ids=["none-to-dict", "none-to-model", "dict-keys", "dict-key-added", "dict-to-none", "dict-value",
         "int-to-float", "list-item-kind", "tuple-to-list", "str-to-enum", "date-to-text", "path-to-str",
         "int-key-to-str", "set-to-list", "model-to-lookalike", "nested-kind"],  # fmt: skip
)
def test_a_changed_class_default_is_not_served_stale(tmp_path: Path, old: tp.Any, new: tp.Any, annotation: tp.Any) -> None:
    before, after = _versions(old, new, annotation)
    assert before(infra={"folder": tmp_path}).run() == repr(old)
    now = after(infra={"folder": tmp_path})
    assert now.infra.uid() == before().infra.uid()  # defaults are left out of the uid
    with pytest.raises(CacheError, match=r"value.*cached with .*now"):
        now.run()
    assert after(infra={"folder": tmp_path, "mode": "force"}).run() == repr(new)


def test_an_added_field_keeps_old_entries(tmp_path: Path) -> None:
    class Grown(pydantic.BaseModel):
        x: int = 1
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return self.x

    Grown.__qualname__ = "Grown"
    assert Grown(infra={"folder": tmp_path}).run() == 1

    class Grown2(pydantic.BaseModel):  # noqa: F811
        x: int = 1
        part: Part = Part()
        extra: dict[str, int] = {"k": 1}
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return self.x + 10

    Grown2.__qualname__ = "Grown"
    assert Grown2(infra={"folder": tmp_path}).run() == 1  # the cached result: nothing changed for it


def test_a_version_read_as_a_float_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "tagged_app.py"
    app.write_text(textwrap.dedent(APP))
    ctx = Ctx(tmp_path)
    folder = f"infra.folder={tmp_path / 'cache'}"
    r = ctx.run(app, "infra.version=1.10", folder, multirun=False)
    assert r.code != 0 and "infra.version='1.10'" in r.err, r.err
    assert not (tmp_path / "cache").exists()
    r = ctx.run(app, "infra.version='1.10'", folder, multirun=False)
    assert r.code == 0, r.err
    assert [p.name.rsplit(",", 1)[1] for p in (tmp_path / "cache").iterdir()] == ["1.10"]
    r = ctx.run(app, "infra.version=2", folder, multirun=False)  # an int is its own text
    assert r.code == 0, r.err
    with pytest.raises(pydantic.ValidationError, match="1.10"):
        Defaults(infra={"version": 1.1})


# ----- values that broke an entry -----
ODD_RUNS: list[str] = []


class Odd(pydantic.BaseModel):
    anything: tp.Any = None
    text: str = ""
    raw: bytes = b""
    params: dict[str, tp.Any] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        ODD_RUNS.append(repr(self.anything) + self.text)
        return "done"


@pytest.mark.parametrize(
    "fields",
    [
        {"anything": float("inf")},
        {"anything": float("nan")},
        {"anything": [1.0, float("-inf")]},
        {"anything": {"x": float("nan")}},
        {"text": "a\udcffb"},  # a non-UTF-8 byte of the command line, as Python decodes it
        {"params": {"k\udcfe": "v\udcff"}},
    ],
    ids=["inf", "nan", "inf-in-list", "nan-in-dict", "surrogate", "surrogate-key"],
)
def test_odd_values_cache_normally(tmp_path: Path, fields: dict[str, tp.Any]) -> None:
    ODD_RUNS.clear()
    for _ in range(3):
        assert Odd(**fields, infra={"folder": tmp_path}).run() == "done"
    assert len(ODD_RUNS) == 1


def test_values_without_a_stable_form_name_their_field() -> None:
    with pytest.raises(UidError, match=r"Cannot compute a uid for raw\b"):
        compute_uid(Odd(raw=b"\xff\xfe"))
    with pytest.raises(UidError, match=r"Cannot compute a uid for params\.a\.b\b"):
        compute_uid(Odd(params={"a": {"b": b"\xff"}}))
    deep: tp.Any = "leaf"
    for _ in range(900):
        deep = {"k": deep}
    with pytest.raises(UidError, match=r"params\.top\.k.* is nested 90\d levels deep"):
        compute_uid(Odd(params={"top": deep}))
    with pytest.raises(UidError, match=r"nested"):
        compute_uid({"top": deep})


class NestedShared(pydantic.BaseModel):
    choices: list[A | B] = []


class NestedOwn(pydantic.BaseModel):
    choices: dict[str, list[A | C]] = {}


def test_a_nested_union_whose_options_share_a_tag_value_is_rejected() -> None:
    with pytest.raises(UidError, match=r"NestedShared.choices.*A and B"):
        compute_uid(NestedShared(choices=[B(v=1)]))
    assert compute_uid(NestedOwn(choices={"k": [A(v=1)]})) != compute_uid(NestedOwn(choices={"k": [C(v=1)]}))


@pytest.mark.parametrize("annotation", [decimal.Decimal, tp.Any])
def test_a_decimal_with_other_digits_is_not_the_default(tmp_path: Path, annotation: tp.Any) -> None:
    """redteam-uid F1: Decimal("1.00") == Decimal("1"), yet quantize() gives 0.67 with one and 1
    with the other. It took the default's uid, and the true default then got a wrong message
    advising mode='force' (which would overwrite the other config's result)."""

    class Step(pydantic.BaseModel):
        step: annotation = decimal.Decimal("1")  # type: ignore[valid-type]
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> str:
            return str((decimal.Decimal(2) / 3).quantize(self.step))

    fine = Step(step=decimal.Decimal("1.00"), infra={"folder": tmp_path})
    assert fine.infra.uid() != Step().infra.uid()
    assert fine.run() == "0.67"
    assert Step(infra={"folder": tmp_path}).run() == "1"
    assert Step(step=decimal.Decimal("-0"), infra={"folder": tmp_path}).infra.uid() != Step(step=decimal.Decimal("0")).infra.uid()


def test_times_in_two_time_zones_are_two_values() -> None:
    utc = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone.utc)
    paris = datetime.datetime(2020, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert utc == paris

    class When(pydantic.BaseModel):
        at: datetime.datetime = utc

    assert compute_uid(When(at=paris)) != compute_uid(When())


DEFAULTS_APP = """
import sys, typing as tp, pydantic
from exca_hydra import TaskInfra
class Part(pydantic.BaseModel):
    tags: set[str] = {"a", "b", "c", "d", "e", "f"}
class M(pydantic.BaseModel):
    names: frozenset[str] = frozenset("abcdefgh")
    keyed: dict[frozenset[str], int] = {frozenset("xyzw"): 1}
    anything: tp.Any = {"k": {1.5, "s", (1, 2)}, "j": [None, True]}
    groups: tp.Any = {frozenset({"a", "b"}), frozenset({"c"})}  # config.yaml: the inner ones in hash order
    part: Part = Part()
    infra: TaskInfra = TaskInfra()
    @infra.apply
    def run(self) -> int:
        print("computing")
        return 1
print(M(infra={"folder": sys.argv[1]}).run())
"""


def test_defaults_with_sets_are_a_hit_under_every_hash_seed(tmp_path: Path) -> None:
    """The digests of the defaults' kinds (cache.digest) write sets in a fixed order, and a set of
    frozensets in config.yaml is compared in any order (redteam-kinds F4: under PYTHONHASHSEED=2 the
    same program's second run said "a default changed since"): every later process finds the entry."""
    import os
    import subprocess
    import sys

    script = tmp_path / "defaults_app.py"
    script.write_text(DEFAULTS_APP)
    outs = [subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}, timeout=60) for seed in (2, 2, 3, 1)]  # fmt: skip
    assert [o.stdout.split() for o in outs] == [["computing", "1"], ["1"], ["1"], ["1"]], [o.stderr[-800:] for o in outs]


def test_an_entry_written_before_the_kinds_were_recorded_is_still_served(tmp_path: Path) -> None:
    annotation = tp.Union[int, float]  # noqa: F841 (read by pydantic from this frame)
    old, _ = _versions(1, 1, annotation)
    assert old(infra={"folder": tmp_path}).run() == "1"
    (config,) = tmp_path.rglob("config.yaml")
    text = config.read_text()
    assert text.startswith("# kinds: {")
    config.write_text(text.split("\n", 1)[1])  # an entry of an earlier version of the library
    (result,) = tmp_path.rglob("result.pkl")
    result.write_bytes(pickle.dumps("cached"))  # what is served is the cached result
    assert old(infra={"folder": tmp_path}).run() == "cached"


def test_an_ordered_dict_is_not_a_dict(tmp_path: Path) -> None:
    """redteam-kinds F1: OrderedDict and dict took one uid under tp.Any, and the second then got a
    false "a default changed since"; two OrderedDicts in other orders (unequal) shared a result."""
    import collections

    class Holder(pydantic.BaseModel):
        x: tp.Any = None
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> str:
            return repr(self.x)

    plain, ordered = {"a": 1, "b": 2}, collections.OrderedDict(a=1, b=2)
    other_order = collections.OrderedDict(b=2, a=1)
    uids = {Holder(x=v).infra.uid() for v in (plain, ordered, other_order)}
    assert len(uids) == 3
    assert Holder(x=collections.OrderedDict(a=1, b=2)).infra.uid() == Holder(x=ordered).infra.uid()
    for value in (plain, ordered, other_order):
        assert Holder(x=value, infra={"folder": tmp_path}).run() == repr(value)
