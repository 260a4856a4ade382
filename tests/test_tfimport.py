"""eominer.tfimport: TensorFlow's start-up notes never reach the terminal; its errors do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_change_encoder_imports_tensorflow_without_its_start_up_notes():
    """What `eominer change --method encoder` does first (eominer.change.encoder._keras),
    in a fresh process as on the command line: stderr stays empty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    r = subprocess.run(
        [sys.executable, "-c", "from eominer.change.encoder import _keras; _keras(1); "
         "import tensorflow as tf; print(tf.constant(2) * 3)"],
        cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=300)
    assert r.returncode == 0, r.stderr
    assert "tf.Tensor(6" in r.stdout
    assert r.stderr == "", r.stderr  # no oneDNN note, no absl preamble


def test_quiet_keeps_warnings_and_errors():
    from eominer.tfimport import quiet

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written "
            "to STDERR\n"
            "I0000 00:00:1796101674.153312   21953 port.cc:153] oneDNN custom operations "
            "are on.\n"
            "I0000 00:00:1796101674.334634   21953 cpu_feature_guard.cc:227] This TensorFlow "
            "binary is optimized\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild\n"
            "E0000 00:00:1796101674.4 21953 cuda_dnn.cc:8310] Unable to register cuDNN\n"
            "/x/keras.py:1: UserWarning: something to fix\n")
    assert quiet(text) == ("E0000 00:00:1796101674.4 21953 cuda_dnn.cc:8310] Unable to "
                           "register cuDNN\n/x/keras.py:1: UserWarning: something to fix\n")


def test_what_the_import_wrote_comes_back_less_the_notes(capfd):
    from eominer.tfimport import _stderr_to, quiet

    note = "I0000 00:00:1796101674.1 1 port.cc:153] oneDNN note\n"
    error = "E0000 00:00:1796101674.1 1 x.cc:1] bad\n"
    got: list[str] = []
    with _stderr_to(got.append):
        os.write(2, (note + error).encode())
    assert capfd.readouterr().err == ""  # nothing reached the terminal meanwhile
    assert got == [note + error]
    assert quiet(got[0]) == error
