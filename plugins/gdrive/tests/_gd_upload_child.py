"""One participant's process that uploads one large object through the gdrive plugin's
own storage (as a mailbox would) and exits: ``python _gd_upload_child.py URL TOKEN_FILE
STATE_DIR SIZE PATH [SEED]``. The content is the same in every run of one seed, so a
restarted process uploads the same bytes to the same place."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from syftflwr.plugin import MailboxSettings, TransportContext
from syftflwr_gdrive.session import open_storage

CHUNK = 256 * 1024


def content(size: int, seed: int = 20) -> bytes:
    return random.Random(seed).randbytes(size)


def main(url: str, token_file: str, state_dir: str, size: int, path: str, seed: int) -> None:
    options = {"token_file": token_file, "api_root_url": url, "transfer_chunk_size": CHUNK}
    context = TransportContext(
        transport="gdrive",
        app_name="app",
        email="alice@example.org",
        options=options,
        state_dir=Path(state_dir) if state_dir else None,
    )
    storage = open_storage(context, MailboxSettings.from_options(options, poll_interval=1.0))
    print("stored" if storage.put_if_absent(path, [content(size, seed)]) else "exists", flush=True)


if __name__ == "__main__":
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], seed)
