"""Sessions (storage only): recording frames to disk, reading them back, verifying and repairing,
the dataset manifest (``manifest``) and the import of the published TFRecords.

``SessionWriter(path, meta).write(frame)`` records; ``open_session(path)`` reads (also a session
cut short); ``verify_session(path, repair=True)`` checks and repairs. The format is described
in ``format.py`` and ``docs/sessions.md``.
"""

from .format import check_name, new_session_dir
from .reader import Session, open_session
from .verify import verify_session
from .writer import SessionWriter

__all__ = ["Session", "SessionWriter", "check_name", "new_session_dir", "open_session", "verify_session"]
