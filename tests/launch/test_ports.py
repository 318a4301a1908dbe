"""``llm_server(port=...)``: a number that is not a TCP port is one line naming it."""

from __future__ import annotations

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.ports import check_port, port_is_free, require_free


@pytest.mark.parametrize("port", [99999, 0, -1, 65536, True, 80.5])
def test_a_number_that_is_not_a_port_names_the_argument(port) -> None:
    with pytest.raises(GpubenchError, match=r"^port=.* is not a TCP port: give a whole number "):
        require_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", 99999) is False  # not an OverflowError


def test_ports_in_range_pass() -> None:
    assert check_port(1) == 1 and check_port(65535) == 65535


@pytest.mark.parametrize("port", ["99999", "abc"])
def test_llm_server_with_a_text_port_fails_the_test_in_one_line(pytester, tmp_path, port) -> None:
    """A port read as text: digits are a number (here out of range), anything else no port;
    "abc" used to be a ValueError traceback from int() in the server pool."""
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"")
    pytester.makepyfile(
        f"""
        def test_port(llm_server):
            llm_server(engine="llamacpp", model={str(model)!r}, port={port!r})
        """
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    shown = 99999 if port.isdigit() else repr(port)
    result.stdout.fnmatch_lines([f"port={shown} is not a TCP port: give a whole number*"])
    assert "Traceback" not in result.stdout.str() and "ValueError" not in result.stdout.str()


def test_llm_server_with_port_99999_fails_the_test_in_one_line(pytester, tmp_path) -> None:
    """The OverflowError of socket.bind used to surface as a traceback from the plugin."""
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"")
    pytester.makepyfile(
        f"""
        def test_port(llm_server):
            llm_server(engine="llamacpp", model={str(model)!r}, port=99999)
        """
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "_* test_port _*",
            "port=99999 is not a TCP port: give a whole number from 1 to 65535, or leave port "
            "unset so gpubench picks a free one",
            "=*",
        ]
    )
    assert "OverflowError" not in result.stdout.str()
