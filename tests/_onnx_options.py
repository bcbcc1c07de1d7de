"""What an onnxruntime session was configured with: the export and serve tests share it."""
from __future__ import annotations

SPINNING_KEYS = ("session.intra_op.allow_spinning", "session.force_spinning_stop")


def spinning_entries(session) -> dict[str, str]:
    """The spinning entries set on ``session``'s options (absent keys left out)."""
    options, found = session.get_session_options(), {}
    for key in SPINNING_KEYS:
        try:
            found[key] = options.get_session_config_entry(key)
        except RuntimeError:  # onnxruntime: "does not have configuration with key"
            pass
    return found
