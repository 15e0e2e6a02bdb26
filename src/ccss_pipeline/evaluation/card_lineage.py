"""Where the model card's models come from: git, the Kedro environment, the parameters, the DVC md5s.

:class:`Lineage` holds what :class:`ccss_pipeline.datasets.ProjectLineageDataset` reads (git, ``dvc.lock``,
each artifact as it is now); :func:`lineage_view` and :func:`data_hashes` are the card's lineage and
training-data hash sections. The DVC md5s are those ``dvc.lock`` records for the stage that wrote each
artifact. ``dvc.lock`` may be older than the files (after a plain ``kedro run``), so each one is
compared with the file as it is now (:class:`ArtifactRecord.status`): a file's md5 is the md5 of its
bytes (what DVC 3 records); a folder's DVC hash is not recomputed here (``dvc status`` compares it).
Also each split's time range (:func:`split_time_ranges`) and the parameters as hashed (:func:`plain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ccss_pipeline.evaluation.render import Part, Table

UNKNOWN = "unknown"
MATCHES = "matches"
DIFFERS = "differs"
FOLDER = "folder — compare with `dvc status`"
NOT_LOCKED = "not in dvc.lock"
#: The model-ready tables: their md5s are "the data" of the training-data section.
DATA_PREFIX = "data/05_model_input/"


@dataclass
class ArtifactRecord:
    """One tracked artifact: the md5 ``dvc.lock`` records for it (``stage``: the stage whose outputs
    record it) and what it is now (``kind``: file, folder or missing; ``current_md5`` of a file's bytes)."""

    path: str
    stage: str | None = None
    locked_md5: str | None = None
    nfiles: int | None = None
    kind: str = UNKNOWN
    current_md5: str | None = None

    @property
    def status(self) -> str:
        """ "matches" / "differs — ..." for a file, the folder note for a folder, or why nothing is compared."""
        if self.locked_md5 is None:
            return NOT_LOCKED
        if self.kind == "folder":
            return FOLDER
        if self.kind == "missing":
            return f"{DIFFERS} — the file is missing"
        if self.kind != "file" or self.current_md5 is None:
            return "not checked"
        if self.current_md5 == self.locked_md5:
            return MATCHES
        return f"{DIFFERS} — the file changed after dvc.lock was written (`dvc repro` or `dvc commit` records it)"


def locked_outputs(dvc_lock: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``path -> {"stage", "md5", "nfiles"}`` of every output ``dvc.lock`` records, by the stage that wrote it."""
    out: dict[str, dict[str, Any]] = {}
    stages = (dvc_lock or {}).get("stages") or {}
    if not isinstance(stages, Mapping):
        return out
    for stage, entry in stages.items():
        for item in (entry or {}).get("outs") or []:
            if isinstance(item, Mapping) and item.get("path"):
                out[str(item["path"]).rstrip("/")] = {"stage": str(stage), "md5": item.get("md5"),
                                                      "nfiles": item.get("nfiles")}  # fmt: skip
    return out


def artifact_records(
    dvc_lock: Mapping[str, Any] | None, current: Mapping[str, Mapping[str, Any]]
) -> list[ArtifactRecord]:
    """One :class:`ArtifactRecord` per path of ``current`` (``path -> {"kind", "md5"}``, as
    :class:`~ccss_pipeline.datasets.ProjectLineageDataset` reads them), in that order."""
    locked = locked_outputs(dvc_lock)
    records = []
    for path, now in current.items():
        lock = locked.get(str(path).rstrip("/"), {})
        md5 = lock.get("md5")
        records.append(ArtifactRecord(
            path=str(path), stage=lock.get("stage"), locked_md5=None if md5 is None else str(md5),
            nfiles=lock.get("nfiles"), kind=str(now.get("kind", UNKNOWN)), current_md5=now.get("md5")))  # fmt: skip
    return records


@dataclass
class Lineage:
    """Where the card's models come from: git, the Kedro environment, the parameters, the DVC md5s."""

    git_commit: str = UNKNOWN
    git_dirty: bool | None = None
    git_dirty_paths: list[str] = field(default_factory=list)
    env: str = "base"
    params_hash: str = ""
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    has_dvc_lock: bool = False

    @classmethod
    def from_loaded(cls, loaded: Mapping[str, Any], params_hash: str = "") -> Lineage:
        """From what the lineage dataset loads (``git_commit``, ``git_dirty``, ``git_dirty_paths``,
        ``dvc_lock``, ``env``, ``artifacts``); anything absent is "unknown"."""
        dvc_lock = loaded.get("dvc_lock")
        return cls(
            git_commit=str(loaded.get("git_commit") or UNKNOWN),
            git_dirty=loaded.get("git_dirty"),
            git_dirty_paths=[str(p) for p in loaded.get("git_dirty_paths") or []],
            env=str(loaded.get("env") or "base"),
            params_hash=params_hash,
            artifacts=artifact_records(dvc_lock, loaded.get("artifacts") or {}),
            has_dvc_lock=isinstance(dvc_lock, Mapping),
        )


# ------------------------------------------------------------------------------------ time ranges


def _timestamp(ms: Any) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def split_time_ranges(event_times: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``split -> (first event, last event)`` in UTC, from each split's ``event_ts`` (ms since the epoch);
    a split without values is left out. Only meaningful when the schema declares a timestamp."""
    out = {}
    for split, values in event_times.items():
        if values is None:
            continue
        array = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy()
        if len(array):
            out[str(split)] = (_timestamp(np.min(array)), _timestamp(np.max(array)))
    return out


# ----------------------------------------------------------------------------------------- the view


def commit_text(lin: Lineage) -> str:
    if lin.git_commit == UNKNOWN:
        return "unknown (no git repository or no git here)"
    if lin.git_dirty is None:
        return f"{lin.git_commit} (working tree state unknown)"
    if not lin.git_dirty:
        return f"{lin.git_commit} (working tree clean)"
    shown = ", ".join(lin.git_dirty_paths[:10]) + (", …" if len(lin.git_dirty_paths) > 10 else "")
    return f"{lin.git_commit} (working tree DIRTY: uncommitted changes in {shown or 'some files'})"


def artifact_rows(records: Sequence[ArtifactRecord]) -> list[list[str]]:
    rows = []
    for r in records:
        md5 = r.locked_md5 or "—"
        if r.nfiles is not None and r.locked_md5:
            md5 += f" ({r.nfiles} files)"
        rows.append([r.path, r.stage or "—", md5, r.status])
    return rows


def data_hashes(lin: Lineage) -> Part | None:
    """The DVC md5s of the model-ready tables; None when there is a dvc.lock without them."""
    data = [r for r in lin.artifacts if r.path.startswith(DATA_PREFIX)]
    if data:
        return Part(["DVC hash of the data (md5 as dvc.lock records it for the stage that wrote it; "
                     "'current' compares it with the file as it is now):"],
                    Table(["file", "stage", "md5 in dvc.lock", "current"], artifact_rows(data)))  # fmt: skip
    if not lin.has_dvc_lock:
        return Part(["DVC hash of the data: unknown — no dvc.lock was found."])
    return None


def rebuild_notes(lin: Lineage) -> list[str]:
    """Why checking out the commit might not give these models back."""
    notes = []
    if lin.git_commit == UNKNOWN:
        notes.append("This copy is not a git repository, so the commit to check out is not known.")
    elif lin.git_dirty:
        notes.append(
            "The working tree had uncommitted changes when this card was written: checking out the commit "
            "alone does not give exactly these inputs."
        )
    if lin.env != "base":
        notes.append(
            f"dvc.yaml's stages run the base environment; these models came from the '{lin.env}' environment, "
            f"so rebuild them with `kedro run --env {lin.env}` after `dvc pull`."
        )
    if any(r.status.startswith(DIFFERS) for r in lin.artifacts):
        notes.append(
            "Some artifacts differ from dvc.lock: `dvc repro` (or `dvc commit`) records the current ones; "
            "until then `dvc pull` restores the recorded versions, not the ones this card describes."
        )
    return notes


def lineage_view(lin: Lineage) -> dict[str, Any]:
    """The card's lineage section: the facts, the DVC md5s, the commands that rebuild the models."""
    facts = [
        f"Git commit: {commit_text(lin)}",
        f"Kedro environment: {lin.env}",
        f"Parameters hash (SHA-256 of all parameters as sorted JSON, ccss_pipeline.fingerprint.content_hash): "
        f"{lin.params_hash or UNKNOWN}",
    ]
    if lin.artifacts and lin.has_dvc_lock:
        dvc = Part(["DVC md5 of the data and model artifacts, as dvc.lock records them for the stage that wrote "
                    "each one. Under `dvc repro` the upstream stages' entries are final when this card is written; "
                    "after a plain `kedro run` dvc.lock may be older than the files, hence the last column: a file "
                    "is compared by the md5 of its bytes (what DVC 3 records), a folder by `dvc status`."],
                   Table(["artifact", "stage", "md5 in dvc.lock", "current"], artifact_rows(lin.artifacts)))  # fmt: skip
    else:
        dvc = Part(["DVC md5s: unknown — no dvc.lock was found next to the project."])
    commit = lin.git_commit if lin.git_commit != UNKNOWN else "<commit: unknown>"
    return {"facts": facts, "dvc": dvc, "rebuild": f"git checkout {commit}\ndvc pull\ndvc repro",
            "notes": rebuild_notes(lin)}  # fmt: skip


def plain(value: Any) -> Any:
    """Parameters as plain JSON-able values: Kedro hands typed top-level parameters to ``parameters`` as
    their pydantic models (defaults filled in), which are dumped, so the hash sees values, not reprs."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
