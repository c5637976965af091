"""The drag payload of a module card: application/x-mirrorpair-module (JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from PySide6.QtCore import QMimeData

MODULE_MIME = "application/x-mirrorpair-module"


@dataclass(frozen=True)
class ModuleDrag:
    cluster: str
    module: str
    source: str  # the column the card was dragged from


def encode(drag: ModuleDrag) -> QMimeData:
    mime = QMimeData()
    payload = {"cluster": drag.cluster, "module": drag.module, "source": drag.source}
    mime.setData(MODULE_MIME, json.dumps(payload).encode())
    mime.setText(drag.module)  # dropping into a text field gives the module's name
    return mime


def decode(mime: QMimeData) -> ModuleDrag | None:
    """The payload, or None when it is not (a valid) module drag."""
    if not mime.hasFormat(MODULE_MIME):
        return None
    try:
        data = json.loads(bytes(mime.data(MODULE_MIME).data()).decode())
        return ModuleDrag(str(data["cluster"]), str(data["module"]), str(data["source"]))
    except (ValueError, KeyError, TypeError):
        return None
