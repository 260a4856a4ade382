"""TensorFlow, imported in one place: quietly, or with an error naming the extra.

TensorFlow's C++ side writes its start-up notes ("oneDNN custom operations are on",
"All log messages before absl::InitializeLog() is called are written to STDERR", CPU
instruction hints) straight to the process's stderr while `import tensorflow` runs,
before `TF_CPP_MIN_LOG_LEVEL` or absl's logging can apply (TF 2.21 prints them even at
level 3). So the import runs with file descriptor 2 sent to a temporary file, and what
it wrote comes back afterwards, less those notes: warnings and errors still show.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import ModuleType

from eominer.errors import require

# glog-style INFO/WARNING lines (I0000 00:00:..., W0000 ...), absl's preamble, and the
# second line of the CPU-instructions note
_NOISE = re.compile(r"^([IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::"
                    r"|To enable the following instructions:)")


def import_tensorflow(purpose: str = "") -> ModuleType:
    """`tensorflow`, imported without its start-up chatter; MissingExtraError (naming
    the `ml` extra and `purpose`) when it is not installed."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO and WARNING lines
    with _stderr_to(lambda text: sys.stderr.write(quiet(text))):
        tf = require("tensorflow", "ml", purpose)
    tf.get_logger().setLevel("ERROR")  # Python-side deprecation notes
    return tf


def quiet(text: str) -> str:
    """`text` without TensorFlow's start-up notes."""
    return "".join(ln for ln in text.splitlines(keepends=True) if not _NOISE.match(ln))


@contextlib.contextmanager
def _stderr_to(replay: Callable[[str], object]) -> Iterator[None]:
    """Send file descriptor 2 (C and Python writes alike) to a temporary file; hand what
    was written to `replay` afterwards, whatever happened meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            replay(tmp.read().decode(errors="replace"))
