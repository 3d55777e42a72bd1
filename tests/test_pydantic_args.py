"""Task parameters annotated with a pydantic model: validated at enqueue, stored as JSON,
rebuilt before the task runs (`offload[pydantic]`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydantic
import pytest

import offload
from offload.testing import Harness, harness


class Address(pydantic.BaseModel):
    city: str
    zip_code: str


class User(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0)
    address: Address | None = None


@dataclass
class Tasks:
    app: offload.App
    greet: offload.Task[..., str]
    maybe: offload.Task[..., str]
    seen: list[object]


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[Tasks]:
    app = offload.App(f"sqlite:///{tmp_path / 'app.db'}")
    seen: list[object] = []

    @app.task(name="greet")
    def greet(user: User, greeting: str = "hello") -> str:
        seen.append(user)
        city = user.address.city if user.address else "nowhere"
        return f"{greeting} {user.name} ({user.age}) from {city}"

    @app.task(name="maybe")
    def maybe(user: User | None) -> str:
        seen.append(user)
        return "nobody" if user is None else user.name

    yield Tasks(app, greet, maybe, seen)
    app.close()


@pytest.fixture
def jobs(tasks: Tasks, db_url: str) -> Iterator[Harness]:
    with harness(tasks.app, url=db_url) as under_test:
        yield under_test


def test_a_model_is_stored_as_json_and_rebuilt_in_the_worker(tasks: Tasks, jobs: Harness) -> None:
    user = User(name="Ada", age=36, address=Address(city="London", zip_code="N1"))
    handle = tasks.greet.enqueue(user, greeting="hi")
    job = jobs.assert_enqueued(tasks.greet, kwargs={"greeting": "hi"})
    assert job.args == [{"name": "Ada", "age": 36, "address": {"city": "London", "zip_code": "N1"}}]
    jobs.drain()
    assert handle.result() == "hi Ada (36) from London"
    (rebuilt,) = tasks.seen
    assert isinstance(rebuilt, User) and rebuilt == user


def test_a_dict_is_validated_at_enqueue(tasks: Tasks, jobs: Harness) -> None:
    handle = tasks.greet.enqueue({"name": "Bob", "age": "7"})
    assert jobs.assert_enqueued(tasks.greet).args == [{"name": "Bob", "age": 7, "address": None}]
    jobs.drain()
    assert handle.result() == "hello Bob (7) from nowhere"


def test_an_invalid_value_is_refused_naming_the_parameter(tasks: Tasks, jobs: Harness) -> None:
    with pytest.raises(offload.ValidationError) as info:
        tasks.greet.enqueue({"name": "Eve", "age": -1, "address": {"city": "Paris"}})
    message = str(info.value)
    assert message.startswith("task 'greet': argument 'user' is not a valid User: ")
    assert "age: Input should be greater than or equal to 0" in message
    assert "address.zip_code: Field required" in message
    assert message.endswith("nothing was stored")
    with pytest.raises(offload.ValidationError, match="argument 'user' is not a valid User"):
        tasks.greet.options(queue="other").enqueue(user="not a user")
    assert jobs.all_enqueued() == []


def test_enqueue_by_name_and_enqueue_many_validate_too(tasks: Tasks, jobs: Harness) -> None:
    with pytest.raises(offload.ValidationError, match="argument 'user'"):
        tasks.app.enqueue("greet", [{"name": "X"}])
    with pytest.raises(offload.ValidationError, match="argument 'user'"):
        tasks.greet.enqueue_many([offload.call(User(name="A", age=1)), offload.call({"age": 2})])
    assert jobs.all_enqueued() == []
    tasks.app.enqueue("greet", [{"name": "Cy", "age": 3}])
    jobs.drain()
    assert tasks.seen == [User(name="Cy", age=3)]


def test_an_optional_model_takes_none(tasks: Tasks, jobs: Harness) -> None:
    tasks.maybe.enqueue(None)
    tasks.maybe.enqueue(User(name="Di", age=4))
    jobs.drain()
    assert tasks.seen == [None, User(name="Di", age=4)]
    assert jobs.perform_job(tasks.maybe, {"name": "Ed", "age": 5}) == "Ed"


class Account(pydantic.BaseModel):
    user_id: int = pydantic.Field(alias="userId")


class Options(pydantic.BaseModel):
    verbose: bool = False
    limit: int = 10


def test_a_model_with_aliases_is_rebuilt_in_the_worker(tasks: Tasks, jobs: Harness) -> None:
    seen: list[Account] = []

    @tasks.app.task(name="account")
    def account(acct: Account) -> int:
        seen.append(acct)
        return acct.user_id

    handle = account.enqueue(Account.model_validate({"userId": 7}))
    assert jobs.assert_enqueued(account).args == [{"userId": 7}]
    jobs.drain()
    assert handle.result() == 7
    assert seen == [Account.model_validate({"userId": 7})]


def test_a_chained_node_validates_its_own_arguments_after_the_parents_result(
    tasks: Tasks, jobs: Harness
) -> None:
    """In a chain the parent's result comes first at run time: the model arguments given to
    `.s()` are the parameters after it, and are validated as those."""

    @tasks.app.task(name="first")
    def first() -> int:
        return 3

    @tasks.app.task(name="second")
    def second(previous: int, opts: Options) -> list[object]:
        return [previous, opts.verbose, opts.limit]

    # By name, as an HTTP producer gives it: `second.s(...)` would need `previous` typed in.
    given = tasks.app.signature("second", {"verbose": True, "limit": 5})
    handle = offload.chain(first.s(), given).enqueue()
    jobs.drain()
    assert handle.result(timeout=5) == [3, True, 5]
    bad = tasks.app.signature("second", {"limit": "many"})
    with pytest.raises(offload.InvalidWorkflow, match="argument 'opts' is not a valid Options"):
        offload.chain(first.s(), bad).enqueue()
