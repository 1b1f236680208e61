"""STAND-IN for a syft-flwr 0.5 aggregator (``SyftGrid`` over ``P2PFileRpc``), in its own
OS process — NOT syft-flwr itself, which is not on PyPI. It follows upstream's source
(``fl_orchestrator/grid.py``, ``rpc/p2p_file_rpc.py``; see ``_upstream.py``) and uses
nothing of syftflwr: it sends one ``train`` instruction (message_id empty, as
``SyftGrid._check_message`` requires; node ids ``crc32(email)``; its own node id 1) as a
``{uuid4}.request`` written in place, polls for ``{uuid4}.response``, then sends the stop
message without waiting for an answer, as ``syftbox_flwr_server`` does.

    python _syftflwr05_aggregator.py CONFIG_JSON

CONFIG: root, email, datasite, app_name, project (holding ``syftflwr_quickstart``),
timeout. Prints one JSON line: the reply's metadata and metrics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).parent))

import _upstream as up
from flwr.common import ArrayRecord, ConfigRecord, RecordDict
from flwr.common.serde import recorddict_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.proto.message_pb2 import Metadata as ProtoMetadata


def instruction(content: RecordDict, dst: int, message_type: str, group_id: str) -> bytes:
    metadata = ProtoMetadata(
        run_id=123, message_id="", src_node_id=up.AGGREGATOR_NODE_ID, dst_node_id=dst,
        reply_to_message_id="", group_id=group_id, ttl=600.0, message_type=message_type,
        created_at=time.time(),
    )  # fmt: skip
    return ProtoMessage(metadata=metadata, content=recorddict_to_proto(content)).SerializeToString()


def send(root: Path, me: str, to: str, app_name: str, data: bytes) -> str:
    future_id = up.new_future_id()
    folder = up.endpoint_dir(root, me, to, app_name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{future_id}.request").write_bytes(data)  # in place, not atomically
    return future_id


def main() -> None:
    config = json.loads(sys.argv[1])
    root, me, ds, app = (
        Path(config["root"]),
        config["email"],
        config["datasite"],
        config["app_name"],
    )
    sys.path.insert(0, config["project"])
    from syftflwr_quickstart.task import initial_weights

    content = RecordDict(
        {"arrays": ArrayRecord(initial_weights()), "config": ConfigRecord({"lr": 0.1})}
    )
    future_id = send(root, me, ds, app, instruction(content, up.str_to_int(ds), "train", "1"))
    reply_path = up.endpoint_dir(root, ds, me, app) / f"{future_id}.response"
    deadline = time.monotonic() + config.get("timeout", 60)
    body = b""
    while time.monotonic() < deadline:  # upstream: get_response every poll interval
        if reply_path.exists():
            body = reply_path.read_bytes()
            try:
                reply = up.from_bytes(body)
                break
            except Exception:  # upstream would drop it; retry in case it is half-written
                pass
        time.sleep(0.05)
    else:
        print(json.dumps({"error": f"no reply to {future_id} ({len(body)} bytes)"}), flush=True)
        return
    stop = RecordDict({"config": ConfigRecord({"action": "stop", "reason": "Server stopped"})})
    send(root, me, ds, app, instruction(stop, up.str_to_int(ds), "system", "final"))
    md = reply.metadata  # type: ignore[attr-defined]
    result = {
        "future_id": future_id,
        "run_id": md.run_id,
        "src_node_id": md.src_node_id,
        "dst_node_id": md.dst_node_id,
        "reply_to_message_id": md.reply_to_message_id,
        "message_type": md.message_type,
        "has_error": reply.has_error(),  # type: ignore[attr-defined]
        "metrics": dict(reply.content["metrics"]) if reply.has_content() else {},  # type: ignore[attr-defined]
        "arrays": len(reply.content["arrays"]) if reply.has_content() else 0,  # type: ignore[attr-defined]
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
