"""Deployment to a PYNQ board: serial console, file transfer, ssh, board-side runner.

Host side (needs pyserial): :mod:`.console` (login, exec with markers),
:mod:`.ports` (find the board's USB-UART), :mod:`.transfer` (checksummed chunked
file transfer over the console), :mod:`.ssh` (the same over ssh/scp),
:mod:`.package` (what is copied), :mod:`.options` (the board options every board
command takes), :mod:`.remote` (``deploy`` and ``run_on_board``),
:mod:`.cli` (typer sub-apps), :mod:`.fakeboard` (a local pseudo-terminal "board").

Board side (no pyserial, no torch): :mod:`.runner`, run as
``python -m cimstack.deploy.runner``. This package imports nothing on purpose, so the
runner loads on the board's own Python.
"""
