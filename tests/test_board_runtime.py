"""The board's Python has numpy and pynq only: every module the board runtime uses must
import without the training, plotting, CLI and event-format stacks."""

import subprocess
import sys
import textwrap

HOST_ONLY = ("torch", "brevitas", "tonic", "numba", "sklearn", "matplotlib", "typer", "rich",
             "snntorch", "threadpoolctl")
BOARD_MODULES = ("cimstack.hw.overlay", "cimstack.deploy.runner", "cimstack.backends",
                 "cimstack.ref.network", "cimstack.ref.snn", "cimstack.bundle",
                 "cimstack.snn_bundle", "cimstack.verify.compare")


def test_board_modules_import_without_host_only_packages():
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {HOST_ONLY!r}:
            sys.modules[name] = None          # importing it now raises ImportError
        for module in {BOARD_MODULES!r}:
            importlib.import_module(module)
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
