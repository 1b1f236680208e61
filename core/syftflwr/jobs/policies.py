"""Automatic approval: the data owner's ``[auto_approve]`` rules (docs/jobs.md).

A rule approves a job that just arrived (every check of :mod:`.review` passed) without
a person reviewing it; the decision is signed, recorded and sent back exactly like a
manual one, marked automatic, with the rule as its reason. The rules compare the new
job with the version of the same app approved last from the same aggregator, and both
must be signed by the same key:

* ``rebuilds``: the same files, built by another flwr ("same files, other build");
* ``run_config_changes``: the same files except ``pyproject.toml``, whose only changes
  are ``[tool.flwr.app.config]`` values and ``[project].version``;
* ``signers``: any job signed by one of these key fingerprints.

Nothing of the bundle is imported: the files are compared by their verified hashes and
``pyproject.toml`` is parsed as TOML.
"""

from __future__ import annotations

import io
import tomllib
import zipfile
from typing import Any

from syftflwr.config.participant import AutoApprove
from syftflwr.jobs.bundle import PYPROJECT, BundleInfo, inspect_bundle, same_files
from syftflwr.jobs.store import JobStore, ReceivedJob


def automatic_reason(
    rules: AutoApprove, job: ReceivedJob, info: BundleInfo, fab: bytes, store: JobStore
) -> str | None:
    """Why ``job`` is approved without review, or None (a person decides)."""
    offer = job.offer
    if offer.signer in rules.signers:
        return f"automatic: signed by a trusted key ({offer.signer})"
    if not (rules.rebuilds or rules.run_config_changes):
        return None
    previous = store.last_approved(offer.aggregator, offer.app)
    if previous is None or previous.job_id == job.job_id:
        return None
    if previous.signer_key != job.signer_key:
        return None
    before_fab = store.fab(previous.job_id)
    before = inspect_bundle(before_fab)
    approved = f"{offer.app} {previous.offer.version} (job {previous.job_id})"
    if rules.rebuilds and same_files(before, info):
        return f"automatic: same files as the approved {approved}, other build"
    if rules.run_config_changes and _only_run_config(before, info, before_fab, fab):
        return f"automatic: only the run config changed since the approved {approved}"
    return None


def _only_run_config(before: BundleInfo, after: BundleInfo, old: bytes, new: bytes) -> bool:
    others = {p: h for p, h in before.files.items() if p != PYPROJECT}
    if others != {p: h for p, h in after.files.items() if p != PYPROJECT}:
        return False
    return _without_run_config(old) == _without_run_config(new)


def _without_run_config(fab: bytes) -> dict[str, Any]:
    """The FAB's pyproject (verified by inspection) minus what the rule lets change."""
    with zipfile.ZipFile(io.BytesIO(fab)) as archive:
        config = tomllib.loads(archive.read(PYPROJECT).decode())
    config.get("project", {}).pop("version", None)
    config.get("tool", {}).get("flwr", {}).get("app", {}).pop("config", None)
    return config
