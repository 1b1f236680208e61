"""STAND-IN for a syft-flwr 0.5 datasite, in its own OS process, for the interop tests.

syft-flwr 0.5 is not on PyPI (0.4.3 is the newest there), so it cannot be installed
here: this script re-implements, from upstream's source, what its datasite does on the
wire (``P2PFileEvents._poll_loop`` / ``_process_request`` and ``RequestProcessor.process``;
see ``_upstream.py`` for the files it follows). It uses nothing of syftflwr — only flwr,
the file layout and upstream's encodings — and, like upstream, it keeps what it has
processed in memory only, writes its replies in place (not atomically), and answers a
stop message or an unparsable request with no reply at all.

    python _syftflwr05_datasite.py CONFIG_JSON

CONFIG: email, app_name, project (folder holding the ClientApp's package), client_app
("module:attr"), partition_id, num_partitions, run_config, poll_interval, and either
``root`` (a shared folder) or ``drive`` = {url, token, helpers} (Google Drive through the
real google-api-python-client, as upstream's ``GDriveFileIO`` uses it; ``helpers`` is the
folder of the gdrive tests' ``drive_server`` module that builds the client).
Prints ``ready`` once polling and ``stopped`` when the aggregator's stop message came.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).parent))

import _upstream as up
from flwr.common import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode

SYSTEM = "system"  # upstream: MessageType.SYSTEM (gone from newer flwr; same value)


def is_stop_signal(message: Message) -> bool:
    if message.metadata.message_type != SYSTEM:
        return False
    if "config" in message.content and "action" in message.content["config"]:
        return message.content["config"]["action"] == "stop"
    return message.metadata.group_id == "final"


class LocalFiles:
    """Upstream's layout on a shared folder."""

    def __init__(self, root: Path, me: str, app_name: str) -> None:
        self.root, self.me, self.app_name = root, me, app_name

    def senders(self) -> list[str]:
        return up.inbox_senders(self.root, self.me)

    def requests(self, sender: str) -> list[str]:
        folder = up.endpoint_dir(self.root, sender, self.me, self.app_name)
        return sorted(p.name for p in folder.glob("*.request")) if folder.is_dir() else []

    def read(self, sender: str, name: str) -> bytes:
        return (up.endpoint_dir(self.root, sender, self.me, self.app_name) / name).read_bytes()

    def write(self, recipient: str, name: str, data: bytes) -> None:
        outbox = up.endpoint_dir(self.root, self.me, recipient, self.app_name)
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / name).write_bytes(data)  # in place, like a non-atomic writer


FOLDER = "application/vnd.google-apps.folder"


class DriveFiles:
    """``syft_flwr/gdrive_io.py`` (``GDriveFileIO``) on the real Drive client. Two
    deviations, both because the loopback Drive, like Drive, matches ``name contains`` on
    prefixes only: inbox folders and ``.request`` files are listed wider and filtered
    here (upstream filters folder names by parsing them too). The outbox is shared with
    its recipient when created, as syft-client does when a peer is added."""

    def __init__(self, service: Any, me: str, app_name: str) -> None:
        self.s, self.me, self.app = service, me, up.app_folder(app_name)
        self.cache: dict[str, str] = {}

    def _list(self, q: str) -> list[dict[str, Any]]:
        files = self.s.files().list(q=q, fields="files(id,name)", pageSize=100).execute()
        return list(files.get("files", []))

    def _find(
        self, name: str, *, owner: str | None = None, parent: str | None = None
    ) -> str | None:
        q = f"name = '{name}' and mimeType = '{FOLDER}' and trashed = false"
        q += f" and '{owner}' in owners" if owner else ""
        q += f" and '{parent}' in parents" if parent else ""
        found = self._list(q)
        return str(found[0]["id"]) if found else None

    def _create(self, name: str, parent: str) -> str:
        body = {"name": name, "mimeType": FOLDER, "parents": [parent]}
        return str(self.s.files().create(body=body, fields="id").execute()["id"])

    def _syftbox(self) -> str:
        if "SyftBox" not in self.cache:
            found = self._find("SyftBox", owner=self.me, parent="root")
            self.cache["SyftBox"] = found or self._create("SyftBox", "root")
        return self.cache["SyftBox"]

    def _nested(self, parent: str, parts: list[str], *, create: bool) -> str | None:
        for part in parts:  # [app_name, "rpc", endpoint]: app_name "flwr/x" is ONE folder
            key = f"{parent}/{part}"
            if key not in self.cache:
                found = self._find(part, parent=parent)
                if found is None and not create:
                    return None
                self.cache[key] = found or self._create(part, parent)
            parent = self.cache[key]
        return parent

    def senders(self) -> list[str]:
        q = f"name contains '{up.OUTBOX}' and mimeType = '{FOLDER}' and trashed = false"
        out = []
        for item in self._list(q):
            parts = item["name"].split("_")  # GdriveInboxOutBoxFolder.from_name
            if len(parts) == 6 and parts[5] == self.me:
                out.append(parts[3])
        return out

    def _endpoint(self, sender: str, recipient: str, *, create: bool) -> str | None:
        name = f"{up.OUTBOX}_{sender}_to_{recipient}"
        folder = self._find(name, owner=sender)
        if folder is None and create:
            folder = self._create(name, self._syftbox())
            body = {"type": "user", "role": "writer", "emailAddress": recipient}
            self.s.permissions().create(
                fileId=folder, body=body, sendNotificationEmail=False
            ).execute()
        if folder is None:
            return None
        return self._nested(folder, [self.app, "rpc", up.ENDPOINT], create=create)

    def requests(self, sender: str) -> list[str]:
        folder = self._endpoint(sender, self.me, create=False)
        if folder is None:
            return []
        names = [f["name"] for f in self._list(f"'{folder}' in parents and trashed = false")]
        return sorted(n for n in names if n.endswith(".request"))

    def read(self, sender: str, name: str) -> bytes:
        folder = self._endpoint(sender, self.me, create=False)
        found = self._list(f"name = '{name}' and '{folder}' in parents and trashed = false")
        return bytes(self.s.files().get_media(fileId=found[0]["id"]).execute())

    def write(self, recipient: str, name: str, data: bytes) -> None:
        from googleapiclient.http import MediaIoBaseUpload

        folder = self._endpoint(self.me, recipient, create=True)
        media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream")
        body = {"name": name, "parents": [folder]}
        self.s.files().create(body=body, media_body=media, fields="id").execute()


def main() -> None:
    config = json.loads(sys.argv[1])
    me, app_name = config["email"], config["app_name"]
    files: LocalFiles | DriveFiles
    if "drive" in config:
        sys.path.insert(0, config["drive"]["helpers"])
        from drive_server import drive_service

        service = drive_service(config["drive"]["url"], config["drive"]["token"])
        files = DriveFiles(service, me, app_name)
    else:
        files = LocalFiles(Path(config["root"]), me, app_name)
    sys.path.insert(0, config["project"])
    module, _, attr = config["client_app"].partition(":")
    client_app = getattr(importlib.import_module(module), attr)
    context = Context(
        run_id=0,
        node_id=up.str_to_int(me),
        node_config={
            "partition-id": config["partition_id"],
            "num-partitions": config["num_partitions"],
        },
        state=RecordDict(),
        run_config=config["run_config"],
    )
    processed: set[str] = set()  # upstream: an in-memory LRU of processed requests
    print("ready", flush=True)
    while True:
        for sender in files.senders():
            for name in files.requests(sender):
                key = f"{sender}:{up.ENDPOINT}:{name}"
                if key in processed:
                    continue
                future_id = name.rsplit(".", 1)[0]
                try:
                    try:
                        message = up.from_bytes(files.read(sender, name))
                    except Exception:
                        print(f"cannot parse {name}: no reply", flush=True)
                        processed.add(key)
                        continue
                    if is_stop_signal(message):  # type: ignore[arg-type]
                        print("stopped", flush=True)
                        return
                    try:
                        reply = client_app(message=message, context=context)
                    except Exception as exc:
                        reason = f"Client: '{me}'. Error: {exc}. {traceback.format_exc()}"
                        error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
                        reply = Message(error, reply_to=message)
                    data = up.to_bytes(reply)
                except Exception as exc:  # what upstream writes when processing raised
                    data = up.error_bytes(str(exc))
                files.write(sender, f"{future_id}.response", data)
                processed.add(key)
                print(f"answered {future_id} ({message.metadata.message_type})", flush=True)
        time.sleep(config.get("poll_interval", 0.1))


if __name__ == "__main__":
    main()
