"""STAND-IN for a syft-flwr 0.5 datasite on SyftBox, in its own OS process.

syft-flwr 0.5 is not on PyPI, so this re-implements from its source what its SyftBox
datasite does (``fl_orchestrator/flower_client.py``: ``syftbox_flwr_client``,
``RequestProcessor.process``, ``MessageHandler``): the REAL syft-event
``SyftEvents`` serving ``/messages`` of app ``flwr/{app_name}`` in the datasite, each body
a Flower ``Message`` protobuf (``message_to_proto(...).SerializeToString()``), the reply
the ClientApp's reply protobuf written by syft-event's ``reply_to`` (in place, as
upstream), a stop message answered with no body, an unparsable body with no body either.
With ``encrypt`` (upstream's default on SyftBox): keys and DID made by syft-crypto's
``bootstrap_user``, the handler registered with ``auto_decrypt=True, encrypt_reply=True``
so syft-event decrypts each request (``decrypt_message``) and syft-rpc's ``reply_to``
encrypts the reply (``encrypt_message``); the bodies in between are base64 of the
protobufs, as upstream's ``MessageHandler``. The one change: syft-rpc's call of
``ensure_bootstrap`` (which asks the SyftBox server for the DID) is skipped, since the
tests have no server. Nothing of syftflwr is used.

    python _sb_syftflwr05_datasite.py CONFIG_JSON

CONFIG: email, config_path (SyftBox client config), app_name, project, client_app
("module:attr"), partition_id, num_partitions, run_config, encrypt (bool). Prints ``ready`` once
watching, ``answered ...`` per reply and ``stopped`` on the aggregator's stop message.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import threading
import zlib
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from flwr.common import Context, RecordDict
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from syft_core import Client
from syft_core.config import SyftClientConfig
from syft_event import SyftEvents
from syft_event.types import Request

SYSTEM = "system"


def main() -> None:
    config = json.loads(sys.argv[1])
    me = config["email"]
    path = Path(config["config_path"])
    client = Client(SyftClientConfig.model_validate({**json.loads(path.read_text()), "path": path}))
    sys.path.insert(0, config["project"])
    module, _, attr = config["client_app"].partition(":")
    client_app = getattr(importlib.import_module(module), attr)
    context = Context(
        run_id=0,
        node_id=zlib.crc32(me.encode()),
        node_config={
            "partition-id": config["partition_id"],
            "num-partitions": config["num_partitions"],
        },
        state=RecordDict(),
        run_config=config["run_config"],
    )
    encrypt = bool(config.get("encrypt", False))
    if encrypt:
        import syft_rpc.rpc
        from syft_crypto import bootstrap_user

        bootstrap_user(client)
        syft_rpc.rpc.ensure_bootstrap = lambda c: c  # type: ignore[assignment] # no server
    box = SyftEvents(f"flwr/{config['app_name']}", client=client, publish_schema=False)
    stop = threading.Event()

    @box.on_request("/messages", auto_decrypt=encrypt, encrypt_reply=encrypt)
    def messages(request: Request) -> bytes | str | None:
        try:
            body = request.body or b""
            if encrypt:
                if "X-Syft-Decrypted" not in request.headers:
                    raise ValueError("not decrypted")  # upstream's is_encrypted check
                body = base64.b64decode(body)
            proto = ProtoMessage()
            proto.ParseFromString(body)
            message = message_from_proto(proto)
        except Exception:
            print(f"cannot parse {request.id}: no reply", flush=True)
            return None
        if message.metadata.message_type == SYSTEM:
            content = message.content
            if "config" in content and content["config"].get("action") == "stop":
                print("stopped", flush=True)
                stop.set()
                return None
        reply = client_app(message=message, context=context)
        print(f"answered {request.id} ({message.metadata.message_type})", flush=True)
        data = bytes(message_to_proto(reply).SerializeToString())
        return base64.b64encode(data).decode() if encrypt else data

    box.start()
    print("ready", flush=True)
    stop.wait()
    box.stop()


if __name__ == "__main__":
    main()
