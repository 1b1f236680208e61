"""Hook implementations of the ``gdrive`` transport (entry point
``syftflwr.transports: gdrive``): one registration of core's mailbox kit, detection and
the ``login`` command.

Kept light: nothing here imports the Google libraries; :mod:`syftflwr_gdrive.session`
does, when a role is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syftflwr.plugin import PROFILE_NAMES, Detection, StorageTransport, TransportContext, hookimpl

from syftflwr_gdrive.options import NAME, OPTIONS, Settings, legacy_file, share_key

if TYPE_CHECKING:
    import click

kit = StorageTransport(
    NAME,
    "File mailbox in shared Google Drive folders (changes feed: one API call per idle poll).",
    storage="syftflwr_gdrive.session:open_storage",  # identity: the token's owner
    arrivals="syftflwr_gdrive.session:open_feed",
    options=OPTIONS,
    profiles=PROFILE_NAMES,
    shares_objects=True,  # a blob's folder is shared with exactly its readers (share_folder)
    resumes_uploads=True,  # session URIs of unfinished uploads are kept in the state dir
    share=share_key,
    docs_url="docs/transports/gdrive.md",
)
syftflwr_transport_info, syftflwr_make_client, syftflwr_make_rpc, syftflwr_make_events = kit.hooks()


@kit.detection
def syftflwr_detect(context: TransportContext) -> Detection:
    settings = Settings.from_context(context)  # unreadable options: not usable (kit)
    token = settings.token_path(context.email)
    if token.is_file():
        return Detection(True, f"Google Drive token at {token}", preference=30)
    old = None if settings.token_configured else legacy_file(token, context.env)
    if old is not None:
        return Detection(True, f"Google Drive token at {old} (moves to {token} on first use)", 30)
    if settings.per_participant and context.email is None and token.parent.is_dir():
        return Detection(True, f"per-participant Google Drive tokens in {token.parent}", 30)
    if not settings.token_configured and settings.colab:
        return Detection(True, "Google Colab (its built-in Google login)", preference=40)
    return Detection(False, f"no Google Drive token at {token} (run `syftflwr gdrive login`)")


@hookimpl
def syftflwr_register_commands(group: click.Group) -> None:
    from syftflwr_gdrive.commands import register

    register(group)
