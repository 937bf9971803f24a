"""``--report``: pip's installation report (version 1), plus a ``safepip`` key per item."""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
from typing import TYPE_CHECKING, Any

from safepip import __version__

if TYPE_CHECKING:
    from safepip.models import Pin

_MULTI = {
    "classifier", "requires_dist", "provides_extra", "project_url", "platform",
    "supported_platform", "requires_external", "dynamic", "license_file",
    "obsoletes_dist", "provides_dist",
}


def metadata_json(raw: bytes) -> dict[str, Any]:
    """Core metadata as JSON, the PEP 566 way (as pip's report shows it)."""
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    out: dict[str, Any] = {}
    for key in set(msg.keys()):
        field = key.lower().replace("-", "_")
        values = [str(v) for v in msg.get_all(key, [])]
        if field == "keywords":
            out[field] = [k.strip() for k in ",".join(values).split(",") if k.strip()]
        elif field in _MULTI:
            out[field] = values
        else:
            out[field] = values[0]
    payload = msg.get_payload()
    if isinstance(payload, str) and payload.strip():
        out["description"] = payload
    return out


def build(pins: list[Pin], environment: dict[str, str], requested_extras: dict[str, list[str]],
          verification: dict[str, dict[str, Any]]) -> dict[str, Any]:
    items = []
    for pin in pins:
        if pin.dist is None or pin.metadata is None:
            continue
        d = pin.dist
        item: dict[str, Any] = {
            "download_info": {
                "url": d.url,
                "archive_info": ({"hash": f"sha256={d.sha256}", "hashes": {"sha256": d.sha256}}
                                 if d.sha256 else {}),
            },
            "is_direct": d.index_url == "",
            "is_yanked": d.is_yanked,
            "requested": pin.requested,
            "metadata": metadata_json(pin.metadata.raw),
        }
        if pin.name in requested_extras:
            item["requested_extras"] = requested_extras[pin.name]
        item["safepip"] = {
            "index": d.index_url or None,
            "filename": d.filename,
            "upload_time": d.upload_time,
            **verification.get(pin.name, {}),
        }
        items.append(item)
    return {
        "version": "1",
        "pip_version": f"safepip {__version__}",
        "install": items,
        "environment": environment,
    }


def write(path: str, report: dict[str, Any]) -> None:
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    if path == "-":
        print(text, end="")
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
