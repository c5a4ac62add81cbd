"""Where the trials of a sweep ran, as its report says: on many machines sharing one study
(``--storage URL``), each machine's sweep directory holds only the run directories it trained.

Every trial records the host of its worker (user attribute ``worker``) and the absolute path of
the sweep directory it wrote into (``sweep_dir``); a report names, for each trial, whether its run
directory is in this sweep directory or where it is (``host:/path/trials/NNNN-...``), and says
when trials are still RUNNING or WAITING (the report is then partial).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


def where(sweep_dir: Path, attrs: dict) -> dict[str, Any]:
    """Where a trial ran (``host``, ``sweep_dir`` on that host) and whether its run directory is
    in this sweep directory (``here``: it ran into this directory's path, on this machine or on
    one sharing the folder, and the folder is there; trials recorded before ``sweep_dir`` was
    kept count as here when their folder is)."""
    run_dir, ran_in = attrs.get("run_dir"), attrs.get("sweep_dir")
    here = bool(run_dir and (sweep_dir / "trials" / run_dir).is_dir()
                and ran_in in (None, str(sweep_dir.resolve())))
    return {"host": (attrs.get("worker") or {}).get("host"), "sweep_dir": ran_in, "here": here}


def location(record: dict) -> str:
    """The report's run-directory cell: a link here, else the host and folder it ran in."""
    if not record["run_dir"]:
        return "-"
    if record["here"]:
        return f"`trials/{record['run_dir']}`"
    if record.get("host") is None:
        return f"not started (`trials/{record['run_dir']}`)"
    folder = record.get("sweep_dir") or "its --out"
    return f"elsewhere: `{record['host']}:{folder}/trials/{record['run_dir']}`"


def situation(sweep_dir: Path, records: list[dict]) -> list[str]:
    """Report lines saying which trials ran here, which elsewhere, and whether it is partial."""
    counted_records = [r for r in records if r["counted"]]
    hosts: dict[str, int] = {}
    for r in counted_records:
        if not r["here"] and r.get("host") is not None:
            hosts[r["host"]] = hosts.get(r["host"], 0) + 1
    here = sum(r["here"] for r in counted_records)
    lines = [f"- this report: `{sweep_dir.resolve()}` on {socket.gethostname()}; the run "
             f"directories of {here} of the {len(counted_records)} trials are here"
             + ("" if not hosts else "; the others ran elsewhere (" + ", ".join(
                 f"{n} on {h}" for h, n in sorted(hosts.items())) + "): their values come from "
                "the study, their run directories stay on the machine that ran them")]
    busy = {state: [r for r in counted_records if r["state"] == state]
            for state in ("RUNNING", "WAITING")}
    if busy["RUNNING"] or busy["WAITING"]:
        running = ", ".join(f"{r['number']} on {r.get('host') or '?'}" for r in busy["RUNNING"])
        lines.append(
            f"- **partial**: {len(busy['RUNNING'])} trial(s) still RUNNING"
            + (f" ({running})" if running else "") + f", {len(busy['WAITING'])} WAITING; "
            "the best point and the table cover the finished trials only: write the report again "
            "(`hierot sweep --report DIR`, with the same `--storage`) when they are done")
    return lines


def partial_note(records: list[dict]) -> str | None:
    """One line for the command's closing message when trials are still running or waiting."""
    running = sum(r["counted"] and r["state"] == "RUNNING" for r in records)
    waiting = sum(r["counted"] and r["state"] == "WAITING" for r in records)
    if not running and not waiting:
        return None
    return (f"partial: {running} trial(s) still RUNNING and {waiting} WAITING (other machines "
            f"sharing the study); the report covers the finished trials; write it again with "
            f"hierot sweep --report DIR when they are done")
