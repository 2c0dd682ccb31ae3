"""The board options: one set for every board command (deploy, run --board).

Defaults come from the ``[remote]`` table of the board's board.toml and its login
user (``[serial] user``); a command-line flag given overrides the file's value, except
``--ssh-option``, which is added in front of the file's (ssh keeps the first value of
an option, so the flag wins).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ..config import load_board
from ..errors import ConfigError
from .ssh import SshRemote, is_user_name, parse_ssh_option

VIAS = ("auto", "serial", "ssh")


@dataclass(frozen=True)
class BoardOptions:
    """How cimstack reaches a board and runs its Python there.

    ``env`` is set for that Python: the PYNQ 3.x image keeps pynq in a root-owned venv
    that needs ``XILINX_XRT=/usr`` (as /etc/profile.d/pynq_venv.sh sets) and root for
    /dev/mem, hence that and ``sudo``. :meth:`local` is this machine's interpreter
    without sudo (tests, the pseudo-terminal and loopback "boards")."""

    board: str = "pynq-z2"                 # board folder under boards/ or a board.toml
    via: str = "auto"                      # auto, serial or ssh
    user: Optional[str] = None             # ssh login user (module ssh: who decides)
    default_user: str = "xilinx"           # when nothing else names one
    ssh_options: tuple = ()                # "KEY=VALUE" for ssh -o
    ssh_config: Optional[str] = None       # ssh -F file
    root: str = "cimstack"                 # folder on the board (home-relative or absolute)
    python: str = "/usr/local/share/pynq-venv/bin/python3"
    sudo: bool = True
    env: Mapping[str, str] = field(default_factory=lambda: {"XILINX_XRT": "/usr"})

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise ConfigError(f"--via {self.via!r}: choose one of {', '.join(VIAS)}")
        if self.user is not None and not is_user_name(self.user):
            raise ConfigError(f"--user {self.user!r} is not a login name (letters, digits, "
                              "_ . - $)")
        object.__setattr__(self, "ssh_options",
                           tuple(parse_ssh_option(o) for o in self.ssh_options))

    @classmethod
    def for_board(cls, board: str = "pynq-z2", **flags) -> "BoardOptions":
        """The options of ``board``'s board.toml, overridden by the ``flags`` that are
        not None (field names of this class)."""
        facts = load_board(board)
        remote = facts.remote
        values = dict(board=board, default_user=facts.serial.user, root=remote.root,
                      python=remote.python, sudo=remote.sudo,
                      ssh_options=tuple(remote.ssh_options),
                      ssh_config=remote.ssh_config or None)
        for key, value in flags.items():
            if value is None:
                continue
            values[key] = (tuple(value) + values["ssh_options"] if key == "ssh_options"
                           else value)
        return cls(**values)

    @classmethod
    def local(cls, root: str = "cimstack", python: str = sys.executable,
              **kwargs) -> "BoardOptions":
        """This machine's Python as the board's, without sudo or the PYNQ environment."""
        return cls(root=root, python=python, sudo=False, env={}, **kwargs)

    def python_cmd(self, args: str, password: str = "xilinx",
                   sudo: Optional[bool] = None) -> str:
        """Shell text that runs ``python <args>`` in the deployed runtime (cwd = root)."""
        q = shlex.quote
        parts = " ".join(f"{k}={q(v)}" for k, v in self.env.items())
        core = (f"env {parts} PYTHONPATH=\"$PWD/runtime/host\" CIMSTACK_HOME=\"$PWD/runtime\" "
                f"{q(self.python)} {args}")
        if self.sudo if sudo is None else sudo:
            core = f"printf '%s\\n' {q(password)} | sudo -S -p '' {core}"
        return f"cd {q(self.root)} && {core}"

    def ssh_remote(self, target: str) -> SshRemote:
        """An :class:`SshRemote` to ``target`` with these options."""
        return SshRemote(target, self.user, self.default_user, self.ssh_options,
                         self.ssh_config)

    @property
    def root_shown(self) -> str:
        """The root as a path a person reads: ``~/cimstack`` or an absolute path."""
        return self.root if self.root.startswith("/") else f"~/{self.root}"
