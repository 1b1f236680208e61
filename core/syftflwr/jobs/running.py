"""Which approved app an aggregator's ``syftflwr run`` is: the FAB hash its requests name.

Datasites that run ``syftflwr serve`` run only the code they approved, and learn which
code a request wants from the FAB hash it names (``syftflwr.app-hash``, authenticated by
the seal). The aggregator's run names the hash of the app it is about to run — built
from the project folder exactly as ``syftflwr submit`` builds it — once this app has been
submitted from here:

* never submitted (the development path: datasites run the code they have with
  ``syftflwr run``): no hash;
* submitted, and this build is one of the versions sent: that hash;
* submitted, but the folder changed since: refused before anything is sent — the
  datasites would refuse every message of it, as code nobody approved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from syftflwr.config import ProjectConfig, load_participant, resolve_state_dir
from syftflwr.errors import ConfigError
from syftflwr.jobs.fab import build_fab
from syftflwr.jobs.store import JobStore


def submitted_hash(
    project: ProjectConfig, email: str, *, env: Mapping[str, str] = os.environ
) -> str | None:
    """The FAB hash ``email``'s run of ``project`` names (None: never submitted).

    :raises ConfigError: the app was submitted, and the folder no longer builds any
        version that was.
    """
    if project.path is None:
        return None
    state_root, _ = resolve_state_dir(load_participant(env), env=env)
    with JobStore(state_root, email) as store:
        sent = [j for j in store.submitted_jobs() if j.offer.app_name == project.app_name]
    if not sent:
        return None
    built = build_fab(Path(project.path).parent)
    if built.fab_hash in {j.offer.fab_hash for j in sent}:
        return built.fab_hash
    last = sent[-1].offer
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(sent[-1].sent_at))
    raise ConfigError(
        f"{built.name} {built.version} (FAB {built.fab_hash[:16]}) is not what you "
        f"submitted: the last job sent {last.app} {last.version} (FAB {last.fab_hash[:16]}) "
        f"on {when}, and the datasites that serve approved apps run only that",
        source=str(project.path),
        fix="submit this version (`syftflwr submit`) and run it once its datasites "
        "approved it (`syftflwr jobs` shows their decisions)",
    )
