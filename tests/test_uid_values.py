"""Issue 21, second red-team round (redteam-kinds): more values that must not share a result,
configs that must not be rebuilt as others, secrets in more places, files the cache writes but
could not read back. Each test names its finding."""

from __future__ import annotations

import datetime
import enum
import logging
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra, compute_uid, uid_config
from exca_hydra.cache.store import CacheError, Entry
from exca_hydra.cache.uid import UidError


class Echo(pydantic.BaseModel):
    x: tp.Any = None
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return repr(self.x)


def _served(tmp_path: Path, *values: tp.Any) -> list[str]:
    return [Echo(x=v, infra={"folder": tmp_path}).run() for v in values]


def test_two_zones_of_one_offset_are_two_values(tmp_path: Path) -> None:
    """F7: Europe/Paris and Africa/Lagos at the same wall time (+01:00 in January) shared a uid;
    so did a naive time and the same time with fold=1."""
    from zoneinfo import ZoneInfo

    times = [datetime.datetime(2020, 1, 1, 12, tzinfo=ZoneInfo(z)) for z in ("Europe/Paris", "Africa/Lagos")]
    fixed = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    fold = datetime.datetime(2020, 11, 1, 1, 30, fold=1)
    values = [*times, fixed, fold, fold.replace(fold=0)]
    assert len({compute_uid(Echo(x=v)) for v in values}) == len(values)
    assert _served(tmp_path, *values) == [repr(v) for v in values]
    assert compute_uid(Echo(x=fixed)) == compute_uid(Echo(x=fixed.replace()))  # a fixed offset: as before


def test_the_extras_of_a_model_that_allows_them_are_in_its_uid(tmp_path: Path) -> None:
    """F28: extra="allow" fields were left out of the uid: configs differing only there shared a result."""

    class Options(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")

    values = [Options(lr=0.1), Options(lr=0.5), Options()]
    assert len({compute_uid(Echo(x=v)) for v in values}) == 3
    assert _served(tmp_path, *values) == [repr(v) for v in values]


class Shape(enum.Enum):
    fixed = (1,)
    growable = [1]


def test_enum_members_whose_values_are_look_alikes_are_two_values(tmp_path: Path) -> None:
    """F26: members with values (1,) and [1] shared a uid."""

    class Holder(pydantic.BaseModel):
        shape: tp.Optional[Shape] = None

    assert compute_uid(Holder(shape=Shape.fixed)) != compute_uid(Holder(shape=Shape.growable))
    assert _served(tmp_path, Shape.fixed, Shape.growable) == [repr(Shape.fixed), repr(Shape.growable)]


class Kind(str, enum.Enum):
    red = "red"


class ByEnum(pydantic.BaseModel):
    kind: tp.Literal[Kind.red] = Kind.red
    v: int = 1


class ByText(pydantic.BaseModel):
    kind: tp.Literal["red"] = "red"
    v: int = 1


class EnumTagged(pydantic.BaseModel):
    m: ByEnum | ByText = ByEnum()


def test_a_str_enum_tag_and_its_text_do_not_tell_options_apart() -> None:
    """F12: Literal[Kind.red] and Literal["red"] were accepted as different tags: both options
    took one uid, and the second got a false "a default changed since"."""
    with pytest.raises(UidError, match="EnumTagged.m.*ByEnum and ByText"):
        compute_uid(EnumTagged(m=ByText()))


def test_a_discriminator_tag_cannot_be_excluded_from_the_uid() -> None:
    """F19: excluding the tag made two options share a uid."""

    class Adam(pydantic.BaseModel):
        name: tp.Literal["adam"] = "adam"
        lr: float = 0.1

    class Sgd(pydantic.BaseModel):
        name: tp.Literal["sgd"] = "sgd"
        lr: float = 0.1

    with pytest.raises(Exception) as info:

        class Train(pydantic.BaseModel):
            opt: Adam | Sgd = pydantic.Field(Adam(), discriminator="name")
            infra: TaskInfra = TaskInfra()

            @infra.apply(exclude_from_cache_uid=("opt.name",))
            def run(self) -> int:
                return 1

    assert "names a tag" in str(info.value.__cause__ or info.value)


class Opt(pydantic.BaseModel):
    lr: float = 0.1

    def step(self) -> str:
        return "sgd"


class Adam(Opt):
    beta: float = 0.9

    def step(self) -> str:
        return f"adam {self.beta}"


class Trainer(pydantic.BaseModel):
    opt: Opt = Opt()
    anything: tp.Any = None
    seed: int = 0
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return self.opt.step()


def test_clone_obj_keeps_a_subclass_instance() -> None:
    """F24: clone_obj turned Adam(Opt) into Opt (its fields and behaviour dropped): a job array
    built with clone_obj computed another config than the one built."""
    base = Trainer(opt=Adam(beta=0.5), anything=Adam(beta=0.7))
    for clone in (base.infra.clone_obj(seed=1), base.infra.clone_obj({"opt.lr": 0.01})):
        assert type(clone.opt) is Adam and clone.opt.beta == 0.5 and type(clone.anything) is Adam
        assert clone.run() == "adam 0.5"
    assert base.infra.clone_obj({"opt.lr": 0.01}).opt.lr == 0.01
    assert base.infra.clone_obj(seed=0).infra.uid() == base.infra.uid()
    assert type(base.infra.clone_obj(opt=Opt()).opt) is Opt  # replaced whole: as given


def test_iter_cached_yields_no_config_in_place_of_another(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """F23: config.yaml writes a tuple as a list: iter_cached yielded the list's config for the
    tuple's entry (and run() then returned the list's result)."""
    _served(tmp_path, (1, 2), [1, 2])
    with caplog.at_level(logging.WARNING):
        found = list(Echo(infra={"folder": tmp_path}).infra.iter_cached())
    assert [f.x for f in found] == [[1, 2]]
    assert "could not be rebuilt" in caplog.text and "1 entry" in caplog.text


def test_a_config_changed_in_place_after_its_uid_is_not_computed_under_that_uid(tmp_path: Path) -> None:
    """F21: x.append(5) after uid() stored the result of x=[5] in the default config's folder."""

    class Listed(pydantic.BaseModel):
        x: list[int] = []
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> str:
            return repr(self.x)

    task = Listed(infra={"folder": tmp_path})
    task.infra.uid()
    task.x.append(5)
    with pytest.raises(CacheError, match="changed after its uid"):
        task.run()
    assert Listed(infra={"folder": tmp_path}).run() == "[]"


def test_a_field_typed_as_base_model_leaves_pydantic_alone() -> None:
    """F8: a field annotated pydantic.BaseModel set extra="forbid" on BaseModel itself (every
    model of the process then refused extra keys), and the class definition failed."""

    class Loose(pydantic.BaseModel):
        cfg: tp.Optional[pydantic.BaseModel] = None
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return 1

    assert "extra" not in pydantic.BaseModel.model_config
    assert Loose().run() == 1


def test_a_url_password_in_a_model_is_a_secret(tmp_path: Path) -> None:
    """F11: a model's str (or pydantic PostgresDsn) holding a URL with a password went in clear
    into the folder name, uid.yaml and config.yaml."""

    class Query(pydantic.BaseModel):
        url: str = "postgres://reader:public@localhost/db"
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return len(self.url)

    task = Query(url="postgres://admin:LEAKPW@prod/db", infra={"folder": tmp_path})
    assert task.run() == len("postgres://admin:LEAKPW@prod/db")
    folder = task.infra.uid_folder()
    assert "LEAKPW" not in str(folder) and folder.name.startswith("url=___")
    for name in ("uid.yaml", "config.yaml"):
        assert "LEAKPW" not in (folder / name).read_text(), name
    assert Query(url="postgres://admin:LEAKPW@prod/db", infra={"folder": tmp_path}).run() == task.run()  # a hit
    assert Query(url="postgres://admin:other@prod/db").infra.uid() != task.infra.uid()


@pytest.mark.parametrize(
    "key, value",
    [("api_key_prod", "X"), ("password2", "X"), ("OPENAI_API_KEY_2", "X"), ("db_password_old", "X"),
     ("token_v2", "X"), ("secret_value", "X"), ("apiKeys", "X"), ("q", "https://h/x?X-Amz-Credential=X"),
     ("q", "https://h/cb#access_token=X"), ("u", "postgres://u:pa/X@h/db"), ("c", "host=h dbname=d password=X"),
     ("ado", "Server=h;Password=X;")],  # fmt: skip
)
def test_more_spellings_of_secrets_stay_out_of_names_and_files(tmp_path: Path, key: str, value: str) -> None:
    """F20, F5: a qualifier after the secret word, a query key ending in credential, a token in a
    fragment, a password holding '/', libpq's and ADO's password=."""
    value_secret = value.replace("X", "SEKRIT")
    cfg = {"seed": 1, "nested": [{key: value_secret}], key: value_secret}
    uid = compute_uid(cfg)
    entry = Entry(tmp_path / uid)
    entry.write_configs(cfg, uid_config(cfg))
    assert "SEKRIT" not in uid + (entry.folder / "config.yaml").read_text() + (entry.folder / "uid.yaml").read_text()


def test_ordinary_keys_stay_ordinary() -> None:
    plain = {"tokens": [1, 2], "max_tokens": 3, "secret_sauce": 1, "key_dim": 4, "eos_token": "x", "url": "https://user@host/x"}
    assert all(f"{k}=" in compute_uid(plain) for k in ("eos_token", "key_dim", "max_tokens", "secret_sauce", "tokens"))


def test_a_config_too_large_to_read_back_is_refused_before_it_is_written(tmp_path: Path) -> None:
    """F22: a config over the 4 MiB read bound (a long vocabulary list, also in a field excluded
    from the uid) was computed once, then every call said its own file was "not a file this
    library wrote"."""

    class Vocab(pydantic.BaseModel):
        words: list[str] = []
        infra: TaskInfra = TaskInfra()

        @infra.apply(exclude_from_cache_uid=("words",))
        def run(self) -> int:
            return len(self.words)

    big = Vocab(words=[f"word{i:07d}" for i in range(400_000)], infra={"folder": tmp_path})
    with pytest.raises(CacheError, match="too large to cache.*config.yaml"):
        big.run()
    assert not list(tmp_path.rglob("result.pkl"))
    assert Vocab(words=["a"], infra={"folder": tmp_path}).run() == 1


def test_a_byte_size_field_caches(tmp_path: Path) -> None:
    """F9: pydantic's ByteSize (an int subclass) made uid() work, then every call failed in YAML."""

    class Prep(pydantic.BaseModel):
        cache_size: pydantic.ByteSize = pydantic.ByteSize(1024)
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return int(self.cache_size)

    assert Prep(cache_size="2 GiB", infra={"folder": tmp_path}).run() == 2**31
    assert Prep(cache_size="2 GiB", infra={"folder": tmp_path}).infra.status() == "completed"


def test_clone_obj_keeps_subclass_instances_in_lists_and_dicts() -> None:
    """F31: the same inside list[Opt] and dict[str, Opt]."""

    class Many(pydantic.BaseModel):
        opts: list[Opt] = []
        named: dict[str, Opt] = {}
        seed: int = 0

    base = Many(opts=[Adam(beta=0.5)], named={"k": Adam(beta=0.5)})

    class Owner(pydantic.BaseModel):
        many: Many = Many()
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return 1

    clone = Owner(many=base).infra.clone_obj({"many.seed": 1}).many
    assert type(clone.opts[0]) is Adam and type(clone.named["k"]) is Adam and clone.seed == 1


def test_two_classes_of_one_name_are_never_served_each_others_result(tmp_path: Path) -> None:
    """F6: two classes named Config from two modules took one uid in a tp.Any field and the
    second was served the first's result. The entry's record of kinds names the module: the
    second is refused, not served (give such classes their own names to cache both)."""
    import types

    made = []
    for module in ("vision_cfg", "audio_cfg"):
        namespace = types.ModuleType(module)
        exec("import pydantic\nclass Config(pydantic.BaseModel):\n    lr: float = 0.1\n", namespace.__dict__)
        made.append(namespace.Config())
    assert compute_uid(Echo(x=made[0])) == compute_uid(Echo(x=made[1]))  # (the uid names a class by its name)
    assert _served(tmp_path, made[0]) == [repr(made[0])]
    with pytest.raises(CacheError, match="another kind or class"):
        _served(tmp_path, made[1])


def test_a_forced_recompute_that_fails_loses_no_result(tmp_path: Path) -> None:
    """redteam-general F3: mode=force removed the good result before recomputing: a recompute
    that raised or was interrupted left nothing. The result is set aside until the new one is
    written."""
    import pickle

    class Flaky(pydantic.BaseModel):
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            if (tmp_path / "fail").exists():
                raise ValueError("broken now")
            if (tmp_path / "interrupt").exists():
                raise KeyboardInterrupt
            return 1

    assert Flaky(infra={"folder": tmp_path / "c"}).run() == 1
    folder = Flaky(infra={"folder": tmp_path / "c"}).infra.uid_folder()
    for how in ("interrupt", "fail"):
        (tmp_path / how).touch()
        with pytest.raises((ValueError, KeyboardInterrupt)):
            Flaky(infra={"folder": tmp_path / "c", "mode": "force"}).run()
        (tmp_path / how).unlink()
        assert pickle.loads((folder / "result.pkl.previous").read_bytes()) == 1
    assert "kept as" in (folder / "error.txt").read_text()
    assert Flaky(infra={"folder": tmp_path / "c", "mode": "force"}).run() == 1
    assert (folder / "result.pkl").exists() and not (folder / "result.pkl.previous").exists()


class NanoTime(datetime.datetime):
    """A datetime with nanoseconds, as pandas' Timestamp (pandas is not a dependency)."""

    nanosecond = 0

    def __new__(cls, *args: tp.Any, nanosecond: int = 0) -> "NanoTime":
        out = super().__new__(cls, *args)
        out.nanosecond = nanosecond
        return out

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and getattr(other, "nanosecond", 0) == self.nanosecond

    __hash__ = datetime.datetime.__hash__


def test_times_that_differ_in_nanoseconds_are_two_values() -> None:
    """F25: two pandas Timestamps that differ only in nanoseconds shared a uid (their JSON form
    stops at microseconds)."""
    one, two = NanoTime(2020, 1, 1, nanosecond=1), NanoTime(2020, 1, 1, nanosecond=2)
    assert len({compute_uid(Echo(x=v)) for v in (one, two, datetime.datetime(2020, 1, 1))}) == 3
