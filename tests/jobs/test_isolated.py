"""A ClientApp in its own process (syftflwr.jobs.isolated), in real child processes.

What a data owner relies on: the app keeps its Flower Context across the messages of a
run, its exceptions become Flower error replies with Flower's reason, its crash fails one
message and the next one gets a fresh process, its prints never break the protocol, and
it never sees the variables that locate the participant's keys and state.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from syftflwr.envelope import Request
from syftflwr.flower import compat
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.jobs.isolated import ClientAppRaisedError, IsolatedAppError, IsolatedClientApp

AGG = "agg@example.org"
DS = "ds1@example.org"
NODE = node_id_for(DS)

CLIENT = """
import os
from flwr.app import Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()

@app.train()
def train(msg, context):
    n = int(context.state["count"]["n"]) + 1 if "count" in context.state else 1
    context.state["count"] = MetricRecord({"n": n})
    print("chatter from the app on stdout")
    config = msg.content["config"]
    if config.get("boom"):
        raise ValueError("boom from the app")
    if config.get("die"):
        os._exit(3)
    secrets = [k for k in os.environ if k.startswith("SYFTFLWR_")]
    at_workdir = int(os.getcwd() == os.environ["EXPECTED_CWD"])
    metrics = {"n": n, "pid": os.getpid(), "secrets": len(secrets),
               "lr": float(context.run_config["lr"]), "cwd_is_workdir": at_workdir}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
"""


def write_app(root: Path, client: str = CLIENT) -> Path:
    pkg = root / "tinyapp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "client_app.py").write_text(textwrap.dedent(client))
    (pkg / "server_app.py").write_text("app = None\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "tinyapp"\nversion = "1.0.0"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "tinyapp.server_app:app"\nclientapp = "tinyapp.client_app:app"\n\n'
        "[tool.flwr.app.config]\nlr = 0.5\n"
    )
    return root


def train_message(run_id: int = 7, **config: object) -> Message:
    compat.set_task_identity(run_id)
    content = RecordDict({"config": ConfigRecord(dict(config))})  # type: ignore[arg-type]
    message = Message(content, NODE, "train", ttl=60)
    compat.stamp_instruction(message, run_id=run_id, src_node_id=SUPERLINK_NODE_ID)
    compat.set_message_id(message, os.urandom(8).hex())
    return message


def context(run_id: int = 7) -> Context:
    return compat.new_context(run_id=run_id, node_id=NODE, run_config={"lr": 0.5})


@pytest.fixture
def app(tmp_path: Path) -> IsolatedClientApp:
    workdir = tmp_path / "work"
    env = {**os.environ, "SYFTFLWR_STATE_DIR": str(tmp_path / "state"),
           "SYFTFLWR_HOME": str(tmp_path), "EXPECTED_CWD": str(workdir)}  # fmt: skip
    isolated = IsolatedClientApp(write_app(tmp_path / "app"), workdir=workdir, env=env)
    yield isolated  # type: ignore[misc]
    isolated.close()


def metrics(reply: Message) -> dict[str, float]:
    return dict(reply.content["metrics"])  # type: ignore[arg-type]


def test_context_persists_per_run_in_one_child_that_sees_no_secrets(
    app: IsolatedClientApp, capfd: pytest.CaptureFixture[str]
) -> None:
    first = metrics(app(train_message(), context()))
    second = metrics(app(train_message(), context()))
    other_run = metrics(app(train_message(run_id=8), context(8)))
    assert (first["n"], second["n"], other_run["n"]) == (1, 2, 1)
    assert first["pid"] == second["pid"] == app.pid != os.getpid()
    assert first["secrets"] == 0  # SYFTFLWR_STATE_DIR/HOME were set in the parent's env
    assert first["lr"] == 0.5 and first["cwd_is_workdir"] == 1
    assert app.starts == 1
    captured = capfd.readouterr()
    assert "chatter from the app" not in captured.out  # the app's prints go to stderr
    assert "chatter from the app" in captured.err


def test_exception_keeps_flowers_reason_and_the_child(app: IsolatedClientApp) -> None:
    app(train_message(), context())
    pid = app.pid
    with pytest.raises(ClientAppRaisedError) as raised:
        app(train_message(boom=True), context())
    assert raised.value.flower_reason.startswith("<class 'ValueError'>:<'boom from the app'>")
    assert "client_app.py" in raised.value.flower_reason  # frames of the child
    assert metrics(app(train_message(), context()))["n"] == 3  # same child, same Context
    assert app.pid == pid


def test_a_crash_fails_one_message_and_the_next_gets_a_new_child(app: IsolatedClientApp) -> None:
    app(train_message(), context())
    with pytest.raises(IsolatedAppError, match="exit code 3"):
        app(train_message(die=True), context())
    reply = metrics(app(train_message(), context()))
    assert reply["n"] == 1  # a new process: its Context starts again
    assert app.starts == 2


def test_a_child_killed_between_messages_is_replaced_without_losing_one(
    app: IsolatedClientApp,
) -> None:
    app.start()
    old = app.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while app.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not app.running
    assert metrics(app(train_message(), context()))["n"] == 1
    assert app.pid != old and app.starts == 2


def test_an_app_that_fails_to_import_says_why(tmp_path: Path) -> None:
    root = write_app(tmp_path / "app", client="raise RuntimeError('missing torch')\n")
    with IsolatedClientApp(root) as broken, pytest.raises(IsolatedAppError) as failed:
        broken.start()
    assert "could not be loaded" in str(failed.value)
    assert "missing torch" in str(failed.value)


def test_the_runner_turns_a_child_exception_into_flowers_error_reply(
    app: IsolatedClientApp,
) -> None:
    class NoEvents:
        def on_request(self, endpoint: str, handler: object) -> None:
            pass

        @property
        def email(self) -> str:
            return DS

    runner = DatasiteRunner(NoEvents(), app, email=DS, node_id=NODE, run_config={"lr": 0.5})  # type: ignore[arg-type]

    def ask(message: Message) -> Message:
        request = Request.new(
            sender=AGG, recipient=DS, app="tinyapp", endpoint="messages",
            body=encode_message(message), ttl=60,
        )  # fmt: skip
        return decode_message(runner.handle(request))  # type: ignore[arg-type]

    assert metrics(ask(train_message()))["n"] == 1
    failed = ask(train_message(boom=True))
    assert failed.has_error()
    assert failed.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert failed.error.reason.startswith("<class 'ValueError'>:<'boom from the app'>")
    assert runner.stats.errors == 1
