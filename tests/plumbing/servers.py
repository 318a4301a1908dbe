"""The stand-ins for a started server that tests' inner pytest files pass to ``serve_bench``.

``serve_bench`` takes any object with ``base_url``, ``model`` and ``engine`` (``ServerLike``);
tests that point it at the stub server (testing/stub_server.py) write these two dataclasses
into their inner test files. One copy here, spliced into those files' text
(``SERVER_CLASSES + "URL = ..."``), so every such test describes the server the same way.
It has no braces, so the text can go through ``str.format``.
"""

SERVER_CLASSES = """
from dataclasses import dataclass

@dataclass(frozen=True)
class Engine:
    name: str

@dataclass
class Server:
    base_url: str
    model: str = "stub-model"
    engine: Engine = Engine("llamacpp")
"""
