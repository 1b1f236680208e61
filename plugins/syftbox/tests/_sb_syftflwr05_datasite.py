"""STAND-IN for a syft-flwr 0.5.3 datasite on SyftBox, in its own OS process.

syft-flwr 0.5.3 needs Python >= 3.12 and flwr 1.25.0 (the real one runs in `nox -s
interop`), so this does, with the real syft-core, syft-crypto, syft-rpc and syft-event,
what its ``main.py`` does for a datasite (``run.syftbox_run_flwr_client``,
``utils.setup_client``, ``events/syft_events.py``, ``fl_orchestrator/flower_client.py``:
``RequestProcessor``, ``MessageHandler``), line for line where it matters:

- the project is read as upstream reads it: the ClientApp from
  ``[tool.flwr.app.components]``, the run config from ``[tool.flwr.app.config]``, the app
  name from ``[tool.syft_flwr]`` (the ``{aggregator}_{project}_{unix time}`` its
  ``bootstrap`` generates); the context's run and node ids are ``uuid4().int``;
- with encryption (upstream's default, ``SYFT_FLWR_ENCRYPTION_ENABLED``): syft-crypto's
  ``ensure_bootstrap`` makes the keys and DID (its server lookup fails fast on the tests'
  offline server and it falls back to the local files, as upstream does there);
- syft-event's ``SyftEvents("flwr/{app_name}", cleanup_expiry="1d",
  cleanup_interval="1d")`` serves ``/messages`` (its schema published, as upstream), with
  ``auto_decrypt``/``encrypt_reply`` set to the encryption; syft-rpc writes each reply in
  place; a body is base64-decoded when encrypted (used as it is when that fails), parsed
  as a Flower ``Message`` protobuf; an unparsable one gets no body; a stop (a SYSTEM
  message whose ``config.action`` is ``"stop"``, or group ``"final"``) stops serving with
  no body; the ClientApp's reply, or an error reply when it raised, is the protobuf
  (base64 of it when encrypted).

The one addition: upstream's bootstrap gives every datasite ``partition-id = 0`` and
``num-partitions = 1``; here each datasite gets its own partition. Nothing of syftflwr is
used.

    python _sb_syftflwr05_datasite.py CONFIG_JSON

CONFIG: config_path (the SyftBox client config), project, partition_id, num_partitions,
encrypt (bool). Prints ``ready`` once serving, ``answered ...`` per reply and ``stopped`` on
the aggregator's stop message.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import sys
import tomllib
import traceback
import uuid
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from flwr.common import Context, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.common.message import Error
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from syft_core import Client
from syft_event import SyftEvents
from syft_event.types import Request

SYSTEM = "system"  # flwr 1.25's MessageType.SYSTEM (1.26 no longer names it)


def to_bytes(message: Message) -> bytes:
    """upstream's ``serde.flower_message_to_bytes``."""
    return bytes(message_to_proto(message).SerializeToString())


def is_stop_signal(message: Message) -> bool:
    """upstream's ``RequestProcessor.is_stop_signal``."""
    if message.metadata.message_type != SYSTEM:
        return False
    if "config" in message.content and "action" in message.content["config"]:
        return bool(message.content["config"]["action"] == "stop")
    return message.metadata.group_id == "final"


def main() -> None:
    config = json.loads(sys.argv[1])
    project = Path(config["project"])
    with (project / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    app = pyproject["tool"]["flwr"]["app"]
    app_name = pyproject["tool"]["syft_flwr"]["app_name"]
    client = Client.load(config["config_path"])
    sys.path.insert(0, str(project))
    module, _, attr = app["components"]["clientapp"].partition(":")
    client_app = getattr(importlib.import_module(module), attr)
    partition = {"partition-id": config["partition_id"],
                 "num-partitions": config["num_partitions"]}  # fmt: skip
    context = Context(
        run_id=uuid.uuid4().int,
        node_id=uuid.uuid4().int,
        node_config={**app["config"], **partition},
        state=RecordDict(),
        run_config=app["config"],
    )
    encrypt = bool(config["encrypt"])
    if encrypt:
        from syft_crypto.x3dh_bootstrap import ensure_bootstrap

        client = ensure_bootstrap(client)
    box = SyftEvents(
        app_name=f"flwr/{app_name}", client=client, cleanup_expiry="1d", cleanup_interval="1d"
    )

    def prepare_reply(data: bytes) -> bytes | str:
        return base64.b64encode(data).decode("utf-8") if encrypt else data

    def process(body: bytes) -> bytes | str | None:
        try:
            if encrypt:
                with contextlib.suppress(Exception):  # upstream uses the body as it is
                    body = base64.b64decode(body.decode("utf-8"))
            proto = ProtoMessage()
            proto.ParseFromString(body)
            message = message_from_proto(proto)
        except Exception as exc:
            print(f"cannot parse a request ({exc}): no reply body", flush=True)
            return None
        try:
            if is_stop_signal(message):
                print("stopped", flush=True)
                box._stop_event.set()  # upstream's SyftEvents.stop()
                return None
            reply = client_app(message=message, context=context)
            print(f"answered {message.metadata.message_type}", flush=True)
            return prepare_reply(to_bytes(reply))
        except Exception as exc:
            reason = f"Client: '{client.email}'. Error: {exc}. Traceback: {traceback.format_exc()}"
            error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
            print(f"error reply to {message.metadata.message_type}", flush=True)
            return prepare_reply(to_bytes(Message(reply_to=message, error=error)))

    @box.on_request("/messages", auto_decrypt=encrypt, encrypt_reply=encrypt)
    def messages(request: Request) -> bytes | str | None:
        return process(request.body or b"")

    # SyftEvents.run_forever, with "ready" printed once serving
    box.start()
    print("ready", flush=True)
    try:
        while not box._stop_event.is_set():
            box._stop_event.wait(timeout=5)
    finally:
        box.stop()


if __name__ == "__main__":
    main()
