"""The board address of ``--board`` and the board options: one parser, one set of
options for every board command, ssh's own configuration honoured (no server needed:
what ssh resolves is read with ``ssh -G``)."""

from __future__ import annotations

import ipaddress
import shutil
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.config import boards_dir
from cimstack.deploy.options import BoardOptions
from cimstack.deploy.ssh import (ADDRESS_FORMS, BoardAddress, SshRemote, parse_board_address,
                                 parse_ssh_option)
from cimstack.errors import ConfigError

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("scp") is None,
                               reason="no OpenSSH client (ssh, scp)")

GOOD_BOARD_TEXT = (boards_dir() / "pynq-z2" / "board.toml").read_text()
names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.%-]{0,15}", fullmatch=True)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
users = st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,10}", fullmatch=True)
ports = st.none() | st.integers(1, 65535)


@given(st.builds(BoardAddress, names | ipv4 | ipv6, users, ports))
@example(BoardAddress("pynq"))
@example(BoardAddress("192.168.2.99", "xilinx", 2222))
@example(BoardAddress("::1", None, 22))
@example(BoardAddress("fe80::1%eth0"))
@settings(max_examples=300)
def test_every_address_reads_back_as_written(address):
    text = str(address)
    assert parse_board_address(text) == address
    assert not text.startswith("-")


@pytest.mark.parametrize("text, host, user, port", [
    ("pynq", "pynq", None, None),
    ("xilinx@pynq.local", "pynq.local", "xilinx", None),
    ("192.168.2.99:2222", "192.168.2.99", None, 2222),
    ("me@10.0.0.7:22", "10.0.0.7", "me", 22),
    ("[::1]:2200", "::1", None, 2200),
    ("u@[fe80::1%eth0]", "fe80::1%eth0", "u", None),
    ("::1", "::1", None, None),
])
def test_address_forms(text, host, user, port):
    assert parse_board_address(text) == BoardAddress(host, user, port)


@given(st.text(alphabet=string.printable + "é[]@:", max_size=30))
@example("")
@example("@host")
@example("user@")
@example("host:")
@example("host:0")
@example("host:65536")
@example("host:22x")
@example("[::1")
@example("[::1]x")
@example("[pynq]:22")
@example("a@b@c")
@example("-oProxyCommand=touch_x")
@example("me@-host")
@example("host name")
@example("host\n")
@settings(max_examples=400)
def test_any_text_is_an_address_or_one_clear_line(text):
    try:
        address = parse_board_address(text)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"board address {text!r}: ") and ADDRESS_FORMS in message
        assert "\n" not in message
        return
    assert not address.host.startswith("-") and address.host
    assert address.user is None or not address.user.startswith("-")
    assert address.port is None or 1 <= address.port <= 65535
    assert parse_board_address(str(address)) == address


@pytest.mark.parametrize("text", ["IdentityFile", "=x", "Port=", "Port =22", "a-b=1",
                                  "Port=22\nProxyCommand=x", ""])
def test_bad_ssh_options(text):
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_ssh_option(text)


def test_options_come_from_board_toml_with_flags_on_top(tmp_path):
    base = BoardOptions.for_board()
    assert (base.root, base.sudo, base.default_user) == ("cimstack", True, "xilinx")
    assert base.python.startswith("/usr/local/share/pynq-venv") and base.user is None
    toml = tmp_path / "board.toml"
    toml.write_text(GOOD_BOARD_TEXT.replace('ssh_options = []',
                                            'ssh_options = ["ProxyJump=gate", "Port=2200"]')
                    .replace('root = "cimstack"', 'root = "/srv/cim"'))
    opts = BoardOptions.for_board(str(toml), python="/opt/py/bin/python3", sudo=False,
                                  ssh_options=["Port=2222"], user="me", via="ssh")
    assert opts.root == "/srv/cim" and opts.python == "/opt/py/bin/python3"
    assert opts.sudo is False and opts.user == "me" and opts.via == "ssh"
    # the flag's option first: ssh keeps the first value, so --ssh-option wins
    assert opts.ssh_options == ("Port=2222", "ProxyJump=gate", "Port=2200")
    assert "sudo" not in opts.python_cmd("-V") and opts.python_cmd("-V").startswith("cd /srv/cim")


def test_a_bad_board_toml_option_is_named(tmp_path):
    toml = tmp_path / "board.toml"
    toml.write_text(GOOD_BOARD_TEXT.replace('ssh_options = []', 'ssh_options = "Port=1"'))
    with pytest.raises(ConfigError, match="RemoteFacts.ssh_options = 'Port=1' must be a list"):
        BoardOptions.for_board(str(toml))
    toml.write_text(GOOD_BOARD_TEXT.replace('ssh_options = []', 'ssh_options = ["Port"]'))
    with pytest.raises(ConfigError, match="ssh option 'Port' is not KEY=VALUE"):
        BoardOptions.for_board(str(toml))


@needs_ssh
def test_no_port_or_user_is_forced_on_ssh(tmp_path):
    """ssh's own configuration decides: a Host alias keeps its HostName, Port and User;
    only a plain host with no user anywhere gets the board's login user."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host lab-pynq\n  HostName 10.1.2.3\n  Port 2201\n  User student\n"
                   "Host gw-pynq\n  HostName 10.9.9.9\n  ProxyJump gateway\n")
    alias = SshRemote("lab-pynq", ssh_config=str(cfg))
    assert alias.name == "student@lab-pynq"
    assert not any(a.startswith(("Port=", "-p", "-P")) for a in alias.args)
    ssh = alias.resolved()
    assert (ssh["hostname"], ssh["port"], ssh["user"]) == ("10.1.2.3", "2201", "student")
    assert SshRemote("gw-pynq", ssh_config=str(cfg)).resolved()["proxyjump"] == "gateway"
    plain = SshRemote("10.1.2.3", ssh_config=str(cfg))
    assert plain.name == "xilinx@10.1.2.3" and plain.resolved()["port"] == "22"
    given = SshRemote("me@10.1.2.3:2222", ssh_config=str(cfg),
                      ssh_options=["IdentityFile=/k", "Port=1"])
    ssh = given.resolved()
    assert (ssh["user"], ssh["port"], ssh["identityfile"]) == ("me", "2222", "/k")
    assert SshRemote("lab-pynq", user="other", ssh_config=str(cfg)).name == "other@lab-pynq"
