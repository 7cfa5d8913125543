"""Issue 13 ("A cache you can trust"): the uid tells apart the kinds of value a field admits,
compares with a field's actual default, keeps the class default of an infra, caches NaN and sets,
hides secrets, and names the field of an int too long to print."""

from __future__ import annotations

import datetime
import decimal
import enum
import typing as tp
from pathlib import Path

import pydantic
import pytest
import typing_extensions
import yaml

from exca_hydra import TaskInfra, compute_uid, uid_config
from exca_hydra.cache.store import CacheError, Entry
from exca_hydra.cache.uid import UidError, identity_config

from models import MyTask, Trainer

RUNS: list[str] = []  # the calls of the decorated methods below (cluster=None: this process)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Sub(pydantic.BaseModel):
    a: int = 0
    b: str = "b"


class Fixed(pydantic.BaseModel):
    """Every annotation fixes the kind of its value: these uids must never change."""

    x: int = 0
    f: float = 0.5
    s: str = "s"
    flag: bool = False
    opt: int | None = None
    either: int | str = 0  # JSON tells an int from a str already
    lit: tp.Literal["a", "b"] = "a"
    p: Path = Path("p")
    maybe_path: Path | None = None
    d: dict[str, int] = {}
    by_int: dict[int, str] = {}
    floats: list[float] = []
    pair: tuple[int, int] = (0, 0)
    names: set[str] = set()
    ints: frozenset[int] = frozenset()
    color: Color = Color.RED
    day: datetime.date = datetime.date(2000, 1, 1)
    raw: bytes = b""
    dec: decimal.Decimal = decimal.Decimal("0")
    params: dict[str, tp.Any] = {}
    sub: Sub = Sub()
    subs: list[Sub] = []


class Point(typing_extensions.TypedDict):
    x: int
    where: Path


class Fixed2(pydantic.BaseModel):
    point: Point | None = None
    seq: tp.Sequence[int] = ()
    paths: dict[str, list[Path]] = {}
    var: tuple[int, ...] = ()
    opt_lit: tp.Literal["a", "b"] | None = None
    nested: dict[str, dict[str, Sub]] = {}
    colors: list[Color] = []
    when: datetime.datetime | None = None
    sub_or_int: Sub | int = 0


# uids computed before issue 13's changes (commit 4eb80b8): the proof that unambiguous configs
# keep their cache folders
PINNED: list[tuple[tp.Any, str]] = [
    (Fixed(), "default-01e7b720ff566d53"),
    (Fixed(x=3, f=0.25, s="hello", flag=True), "f=0.25,flag=true,s=hello,x=3-5d23dc351ad41792"),
    (Fixed(opt=4, either="1", lit="b"), "either=1,lit=b,opt=4-2f068c1ee2bf1cc0"),
    (Fixed(either=1), "either=1-8f1cc740955591b3"),
    (Fixed(p=Path("/data/x"), maybe_path=Path("rel/y")), "maybe_path=rel_y,p=_data_x-ef6ca3c37df51b24"),
    (Fixed(d={"a": 1, "b": 2}, by_int={1: "a", 2: "b"}), "by_int.1=a,by_int.2=b,d.a=1,d.b=2-6700ad55a125ae73"),
    (Fixed(floats=[1.0, 2.5], pair=(1, 2)), "floats=_1.0,2.5_,pair=_1,2_-30352e612ebc1ad5"),
    (Fixed(names={"z", "a", "m"}, ints=frozenset({3, 1, 2})), "ints=_1,2,3_,names=__a_,_m_,_z__-75d55ae48b4d6207"),
    (Fixed(color=Color.BLUE, day=datetime.date(2020, 1, 2), raw=b"bytes", dec=decimal.Decimal("1.50")), "color=blue,day=2020-01-02,dec=1.50,raw=bytes-160c487a5cee24b3"),
    (Fixed(params={"a": 1, "b": [1, 2.5, None, True, "x"], "c": {"d": "e"}}), "params.a=1,params.b=_1,2.5,null,true,_x__,params.c.d=e-6c444a69a0ec4406"),
    (Fixed(sub=Sub(a=2), subs=[Sub(), Sub(b="c")]), "sub.a=2,subs=___,__b___c___-dcae4c7d3457434c"),
    (Fixed2(point={"x": 1, "where": "/a"}, seq=[1, 2], paths={"a": ["b", "c"]}, var=(1, 2, 3)), "paths.a=__b_,_c__,point.where=_a,point.x=1,seq=_1,2_,var=_1,2,3_-e1fcca5f934eb5a1"),
    (Fixed2(opt_lit="b", nested={"a": {"b": {"a": 3}}}, colors=["blue", "red"]), "colors=__blue_,_red__,nested.a.b.a=3,opt_lit=b-5f4758c130ca509d"),
    (Fixed2(when=datetime.datetime(2020, 1, 2, 3, 4), sub_or_int=Sub(a=5)), "sub_or_int.a=5,when=2020-01-02T03_04_00-5630bfdff3bb65eb"),
    (Fixed2(sub_or_int=7), "sub_or_int=7-68feef0766b481e2"),
    (MyTask(x=12, y="hello"), "x=12,y=hello-48474a65c434ac30"),
    (MyTask(x=1, infra={"version": "2", "cpus_per_task": 3}), "infra.version=2,x=1-bb05de8ff16eae29"),
    (Trainer(model={"name": "transformer", "embeddings": 256}, optimizer="SGD"), "model.embeddings=256,model.name=transformer,optimizer=SGD-067ff636618b3d6b"),
    ({"a": 1, "b": {"c": [1, 2.5, None, True]}, "name": "x"}, "a=1,b.c=_1,2.5,null,true_,name=x-167f69820caebde4"),
    ({"model": {"name": "conv", "layers": 3}, "lr": 0.1, "tags": ["a", "b"]}, "lr=0.1,model.layers=3,model.name=conv,tags=__a_,_b__-5a237f58b6d7cf84"),
]


def test_unambiguous_uids_are_unchanged() -> None:
    for obj, uid in PINNED:
        assert compute_uid(obj) == uid, obj


class FixedTask(pydantic.BaseModel):
    p: Path = Path("p")
    pair: tuple[int, int] = (0, 0)
    names: set[str] = set()
    color: Color = Color.RED
    day: datetime.date = datetime.date(2000, 1, 1)
    by_int: dict[int, str] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return "computed"


def _fixed_task(folder: Path) -> FixedTask:
    return FixedTask(
        p="/data/x", pair=(1, 2), names={"b", "a"}, color="blue", day="2020-01-02", by_int={3: "c"},
        infra={"folder": folder, "version": "1"},
    )


OLD_UID = "by_int.3=c,color=blue,day=2020-01-02,infra.version=1,names=__a_,_b__,p=_data_x,pair=_1,2_-2394e93f62937cf2"
OLD_UID_YAML = """\
p: /data/x
pair:
- 1
- 2
names:
- a
- b
color: blue
day: '2020-01-02'
by_int:
  '3': c
infra:
  version: '1'
"""
OLD_CONFIG_YAML = """\
p: /data/x
pair:
- 1
- 2
names:
- a
- b
color: blue
day: '2020-01-02'
by_int:
  '3': c
infra:
  mode: cached
  version: '1'
"""


def test_an_old_entry_of_an_unambiguous_config_is_still_read(tmp_path: Path) -> None:
    # the files as the code before issue 13 wrote them
    obj = _fixed_task(tmp_path)
    folder = tmp_path / "test_uid_kinds.FixedTask.run,1" / OLD_UID
    folder.mkdir(parents=True)
    (folder / "uid.yaml").write_text(OLD_UID_YAML)
    (folder / "config.yaml").write_text(OLD_CONFIG_YAML)
    Entry(folder).write_result("cached long ago")
    assert obj.infra.uid_folder() == folder
    assert obj.run() == "cached long ago"


def _distinct(*objs: tp.Any) -> None:
    uids = [compute_uid(obj) for obj in objs]
    assert len(set(uids)) == len(uids), uids


# ----- 1. types that print alike -----
class Kinds(pydantic.BaseModel):
    union_keys: dict[int | str, str] = {}
    any_keys: dict[tp.Any, str] = {}
    seq: tuple[int, int] | list[int] = []
    day: datetime.date | str = ""
    color: Color | str = ""
    path: Path | str = ""
    raw: bytes | str = ""
    anything: tp.Any = None


def test_kinds_a_field_admits_are_told_apart() -> None:
    _distinct(Kinds(union_keys={1: "a"}), Kinds(union_keys={"1": "a"}))
    _distinct(Kinds(any_keys={1: "a"}), Kinds(any_keys={"1": "a"}), Kinds(any_keys={1.0: "a"}))
    _distinct(Kinds(any_keys={True: "a"}), Kinds(any_keys={"True": "a"}))
    _distinct(Kinds(any_keys={None: "a"}), Kinds(any_keys={"None": "a"}))
    _distinct(Kinds(seq=(1, 2)), Kinds(seq=[1, 2]))
    _distinct(Kinds(day=datetime.date(2020, 1, 2)), Kinds(day="2020-01-02"))
    _distinct(Kinds(color=Color.RED), Kinds(color="red"))
    _distinct(Kinds(path=Path("a")), Kinds(path="a"))
    _distinct(Kinds(raw=b"a"), Kinds(raw="a"))
    assert Kinds(seq=(1, 2)).seq == (1, 2) and Kinds(day="2020-01-02").day == "2020-01-02"  # as pydantic keeps them
    # only the hash tells them apart: the readable prefix stays as it was
    assert compute_uid(Kinds(seq=(1, 2))).rsplit("-", 1)[0] == compute_uid(Kinds(seq=[1, 2])).rsplit("-", 1)[0]
    assert compute_uid(Kinds(union_keys={1: "a"})).startswith("union_keys.1=a-")


ALIKE_UNDER_ANY: list[tuple[tp.Any, tp.Any]] = [
    ((1, 2), [1, 2]),
    (b"a", "a"),
    (datetime.date(2020, 1, 2), "2020-01-02"),
    (Path("a"), "a"),
    (Color.RED, "red"),
    ({1: "a"}, {"1": "a"}),
    ({True: "a"}, {"True": "a"}),
    ({None: "a"}, {"None": "a"}),
    ({"x": (1, 2)}, {"x": [1, 2]}),
    ([b"a"], ["a"]),
    ({1, 2}, [1, 2]),
    (frozenset({1, 2}), {1, 2}),
    (decimal.Decimal("1.5"), "1.5"),
    (Sub(a=1), {"a": 1}),
    ((1, 2), {"!tuple": [1, 2]}),  # a dict that looks like what tells a tuple apart
    ({"!str:1": "a"}, {1: "a"}),
]


def test_kinds_are_told_apart_under_any_and_in_plain_dict_configs() -> None:
    for one, other in ALIKE_UNDER_ANY:
        _distinct(Kinds(anything=one), Kinds(anything=other))
        _distinct({"k": one}, {"k": other})  # a DictConfig app's plain dict config
    _distinct({1: "a"}, {"1": "a"})
    _distinct({"a": {True: 1}}, {"a": {"True": 1}})


class AnyTask(pydantic.BaseModel):
    value: tp.Any = None
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        RUNS.append(repr(self.value))
        return repr(self.value)



def test_values_that_print_alike_get_their_own_entry(tmp_path: Path) -> None:
    RUNS.clear()
    values: list[tp.Any] = [(1, 2), [1, 2], b"a", "a", {1: "a"}, {"1": "a"}]
    for value in values:
        assert AnyTask(value=value, infra={"folder": tmp_path}).run() == repr(value)
    for value in values:  # read back from the cache: uid.yaml still tells them apart
        assert AnyTask(value=value, infra={"folder": tmp_path}).run() == repr(value)
    assert RUNS == [repr(v) for v in values]
    tuple_obj, list_obj = AnyTask(value=(1, 2), infra={"folder": tmp_path}), AnyTask(value=[1, 2], infra={"folder": tmp_path})
    assert (tuple_obj.infra.uid_folder() / "uid.yaml").read_text() != (list_obj.infra.uid_folder() / "uid.yaml").read_text()
    with pytest.raises(CacheError, match="belongs to another config"):
        Entry(tuple_obj.infra.uid_folder()).verify(uid_config(list_obj), identity_config(list_obj))


# ----- 2. equal to the field's own default -----
class Inner(pydantic.BaseModel):
    a: int = 0


class Outer(pydantic.BaseModel):
    sub: Inner = Inner(a=1)
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> int:
        RUNS.append(f"Outer:{self.sub.a}")
        return self.sub.a


def test_a_sub_config_is_compared_with_the_fields_default(tmp_path: Path) -> None:
    assert Outer(sub={"a": 0}).sub.a == 0 and Outer().sub.a == 1
    _distinct(Outer(), Outer(sub={"a": 0}))
    assert Outer(sub={"a": 1}).infra.uid() == Outer().infra.uid()  # equal to the default: left out
    assert Outer(sub={"a": 0}).infra.config(uid=True) == {"sub": {}}
    RUNS.clear()
    assert Outer(infra={"folder": tmp_path}).run() == 1
    assert Outer(sub={"a": 0}, infra={"folder": tmp_path, "mode": "force"}).run() == 0
    assert Outer(infra={"folder": tmp_path}).run() == 1  # not overwritten by the forced one
    assert Outer(infra={"folder": tmp_path, "mode": "force"}).run() == 1
    assert Outer(sub={"a": 0}, infra={"folder": tmp_path}).run() == 0
    assert RUNS == ["Outer:1", "Outer:0", "Outer:1"]


# ----- 3. the class default of an infra -----
class Versioned(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra(version="2", cpus_per_task=3, keep_in_ram=True)

    @infra.apply
    def run(self) -> int:
        return self.x


def test_fields_set_on_the_class_default_infra_are_kept(tmp_path: Path) -> None:
    for obj in [
        Versioned(infra={"folder": tmp_path}),
        Versioned.model_validate({"infra": {"folder": str(tmp_path), "mode": "force"}}),
        Versioned(infra=TaskInfra(folder=tmp_path)),
    ]:
        infra = obj.infra
        assert (infra.version, infra.cpus_per_task, infra.keep_in_ram, infra.folder) == ("2", 3, True, tmp_path)
        assert infra.method_dir().name.endswith(",2")
        assert infra.uid() == Versioned().infra.uid() == Versioned(infra={"version": "2"}).infra.uid()
    given = Versioned.model_validate({"infra": {"folder": str(tmp_path), "version": "3", "cpus_per_task": None}})
    assert (given.infra.version, given.infra.cpus_per_task, given.infra.keep_in_ram) == ("3", None, True)
    assert given.infra.uid() != Versioned().infra.uid()
    assert Versioned(infra={"folder": tmp_path}).run() == 1
    clone = Versioned(infra={"folder": tmp_path}).infra.clone_obj(x=2)
    assert clone.infra.version == "2" and clone.run() == 2


def test_class_default_infra_kept_through_hydra_yaml(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from exca_hydra.bridge.launch.convert import to_model

    cfg = OmegaConf.create(f"x: 4\ninfra:\n  folder: {tmp_path}\n  mode: retry\n")
    obj = to_model(cfg, Versioned)
    assert (obj.infra.version, obj.infra.cpus_per_task, obj.infra.mode) == ("2", 3, "retry")


# ----- 4. NaN and sets -----
class Numbers(pydantic.BaseModel):
    lr: float = 0.1
    scale: float = float("nan")
    weights: dict[str, float] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        RUNS.append("Numbers")
        return "done"


class Named(pydantic.BaseModel):
    names: set[str] = set()
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        RUNS.append("Named")
        return "done"


def test_nan_values_cache_normally(tmp_path: Path) -> None:
    RUNS.clear()
    nan = float("nan")
    for _ in range(2):
        assert Numbers(lr=nan, weights={"a": nan}, infra={"folder": tmp_path}).run() == "done"
        assert Numbers(scale=nan, infra={"folder": tmp_path}).run() == "done"
    assert RUNS == ["Numbers"] * 2
    assert Numbers(scale=nan).infra.uid() == Numbers().infra.uid()  # NaN equals its NaN default
    assert Numbers(lr=nan).infra.uid().startswith("lr=nan-")  # a NaN value, a number default: kept
    assert Numbers(scale=0.5).infra.config(uid=True) == {"scale": 0.5}  # the other way round


def test_set_values_cache_normally(tmp_path: Path) -> None:
    RUNS.clear()
    names = [f"name{i}" for i in range(40)]
    first = Named(names=names, infra={"folder": tmp_path})
    assert first.run() == "done"
    # another process (another hash seed) iterates the set in another order
    config = first.infra.uid_folder() / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data["names"] = sorted(data["names"], reverse=True)
    config.write_text(yaml.safe_dump(data))
    for order in (names, names[::-1]):
        assert Named(names=order, infra={"folder": tmp_path}).run() == "done"
    assert RUNS == ["Named"]
    assert Named(names=names[::-1]).infra.config(uid=True)["names"] == sorted(names)


# ----- 5. secrets -----
class Secretive(pydantic.BaseModel):
    user: str = "me"
    token: pydantic.SecretStr = pydantic.SecretStr("")
    key: pydantic.SecretBytes | None = None
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> int:
        return len(self.token.get_secret_value())


def test_secrets_enter_the_uid_as_a_hash_only(tmp_path: Path) -> None:
    one = Secretive(token="hunter2", key=b"open-sesame", infra={"folder": tmp_path})
    assert one.run() == 7
    folder = one.infra.uid_folder()
    assert "hunter2" not in one.infra.uid() and "open-sesame" not in one.infra.uid()
    for path in folder.iterdir():
        if path.suffix in (".yaml", ".json"):
            text = path.read_text()
            assert "hunter2" not in text and "open-sesame" not in text, path
    assert "hunter2" not in str(one.infra.config(uid=True))
    _distinct(Secretive(token="hunter2"), Secretive(token="hunter3"), Secretive())
    _distinct(Secretive(key=b"a"), Secretive(key=b"b"), Secretive(token="a"))
    assert Secretive(token="hunter2", infra={"folder": tmp_path}).run() == 7  # cached: verify passes


class EitherSecret(pydantic.BaseModel):
    s: pydantic.SecretStr | pydantic.SecretBytes | None = None


def test_secrets_of_two_kinds_are_told_apart() -> None:
    _distinct(EitherSecret(s=pydantic.SecretStr("a")), EitherSecret(s=pydantic.SecretBytes(b"a")), EitherSecret())


def test_secret_keys_of_plain_dict_configs_stay_out_of_folder_names() -> None:
    cfg = {"db": {"password": "hunter2", "host": "h"}, "HF_TOKEN": "hf_abc", "openai_api_key": "sk-1"}
    uid = compute_uid(cfg)
    assert "hunter2" not in uid and "hf_abc" not in uid and "sk-1" not in uid
    assert "db.host=h" in uid
    assert "hunter2" not in str(uid_config(cfg)) and "sk-1" not in str(uid_config(cfg))
    _distinct(cfg, {**cfg, "HF_TOKEN": "hf_abd"}, {**cfg, "db": {"password": "x", "host": "h"}})
    _distinct({"password": 1}, {"password": "1"})
    # words that merely contain one of those names are ordinary keys
    plain = {"tokenizer": "gpt2", "max_tokens": 3, "key_dim": 4, "eos_token": "x", "secret_sauce": 1}
    assert compute_uid(plain).startswith("eos_token=x,key_dim=4,max_tokens=3,secret_sauce=1,tokenizer=gpt2-")
    for key in ("token", "GITHUB_TOKEN", "client_secret", "aws_secret_access_key", "wandb_api_key", "apikey"):
        assert "hunter2" not in compute_uid({key: "hunter2"}), key


def test_secret_keys_of_plain_dict_configs_stay_out_of_cache_files(tmp_path: Path) -> None:
    cfg = {"db": {"password": "hunter2", "host": "h"}, "api_token": "hf_abc", "x": 1}
    entry = Entry(tmp_path / compute_uid(cfg))
    entry.write_configs(cfg, uid_config(cfg))  # as the launcher records a DictConfig app's job
    for name in ("config.yaml", "uid.yaml"):
        text = (entry.folder / name).read_text()
        assert "hunter2" not in text and "hf_abc" not in text, name
    assert yaml.safe_load((entry.folder / "config.yaml").read_text())["db"]["host"] == "h"
    assert cfg["db"]["password"] == "hunter2"  # the config itself is untouched
    entry.verify(uid_config(cfg), identity_config(cfg))
    with pytest.raises(CacheError, match="belongs to another config"):
        other = {**cfg, "api_token": "hf_abd"}
        entry.verify(uid_config(other), identity_config(other))


@pytest.mark.parametrize(
    "key, value",
    [("api-key", "SEKRIT"), ("API-KEY", "SEKRIT"), ("Api.Key", "SEKRIT"), ("passphrase", "SEKRIT"),
     ("credentials", "SEKRIT"), ("wandb_key", "SEKRIT"), ("hf-token", "SEKRIT"),
     ("conn", "postgres://u:SEKRIT@host/db"), ("url", "https://user:SEKRIT@example.org/x")],  # fmt: skip
)
def test_other_spellings_of_secret_keys_stay_out_of_names_and_files(tmp_path: Path, key: str, value: str) -> None:
    """redteam-uid F4: api-key (the YAML/HTTP spelling of api_key), passphrase, credentials,
    wandb_key and a password inside a URL were in clear in the folder name and cache files."""
    cfg = {"db": {key: value, "host": "h"}, "lr": 0.1}
    uid = compute_uid(cfg)
    assert "SEKRIT" not in uid and f"db.{key}=___" in uid and "db.host=h" in uid
    entry = Entry(tmp_path / uid)
    entry.write_configs(cfg, uid_config(cfg))
    for name in ("config.yaml", "uid.yaml"):
        assert "SEKRIT" not in (entry.folder / name).read_text(), name
    _distinct(cfg, {**cfg, "db": {key: value + "x", "host": "h"}})


def test_urls_without_a_password_are_ordinary_values() -> None:
    for url in ("http://host:8080/x", "https://user@host/x", "s3://bucket/key"):
        assert compute_uid({"url": url}).startswith("url="), url


# ----- 6. an int too long to print -----
class Big(pydantic.BaseModel):
    n: int = 0
    params: dict[str, tp.Any] = {}


def test_an_int_too_long_to_print_is_a_uid_error() -> None:
    huge = 10**5000
    with pytest.raises(UidError, match=r"\bn\b.*digits|digits.*\bn\b"):
        compute_uid(Big(n=huge))
    with pytest.raises(UidError, match=r"params\.a\.b"):
        compute_uid(Big(params={"a": {"b": [huge]}}))
    with pytest.raises(UidError, match=r"x\.y"):
        compute_uid({"x": {"y": huge}})
    with pytest.raises(UidError, match=r"params"):
        compute_uid(Big(params={"a": {huge: 1}}))


def test_secrets_nested_in_lists_and_under_parents_stay_out_of_names_and_files(tmp_path: Path) -> None:
    """redteam-kinds F2: `+API.KEY=...` (Hydra nests it: API: {KEY: ...}), `wandb.key`, a password
    in a list of dicts, a URL's password in a list or in a query string, a key with a tab or a
    Unicode hyphen, were in clear in config.yaml (and some in the folder name)."""
    cfg = {"API": {"KEY": "LEAK1"}, "wandb": {"key": "LEAK2"}, "dbs": [{"password": "LEAK3"}],
           "in_list": ["postgres://user:LEAK4@host/db"], "api_key\t": "LEAK5", "api\u2010key": "LEAK6",
           "\uff41\uff50\uff49_\uff4b\uff45\uff59": "LEAK7", "jdbc": "jdbc:postgresql://host/db?user=u&password=LEAK8",
           "q": "https://host/x?token=LEAK9", "arg": "--url=postgres://u:LEAK10@h/db", "secret_token": "LEAK11",
           "passwords": ["LEAK12"], "seed": 1, "sort": {"key": "name"}, "eos_token": "</s>", "url": "http://host:80/x"}  # fmt: skip
    uid = compute_uid(cfg)
    entry = Entry(tmp_path / uid)
    entry.write_configs(cfg, uid_config(cfg))
    written = uid + (entry.folder / "config.yaml").read_text() + (entry.folder / "uid.yaml").read_text()
    assert "LEAK" not in written, written
    stored = yaml.safe_load((entry.folder / "config.yaml").read_text())
    assert stored["sort"] == {"key": "name"} and stored["url"] == "http://host:80/x" and stored["eos_token"] == "</s>"
    assert stored["dbs"] == [{"password": "**********"}] and stored["API"] == {"KEY": "**********"}
    _distinct(cfg, {**cfg, "dbs": [{"password": "LEAK3x"}]}, {**cfg, "in_list": ["postgres://user:LEAK4x@host/db"]})
