"""The repository's own test plumbing, not installed with the plugin: the CI policy (a
missing component skips, or fails under CI=true), the Docker set-up of the live tests and the
helpers of tests that run pytest inside pytest.

Imported as ``plumbing``: pytest puts ``tests/`` on ``sys.path`` when it loads
``tests/conftest.py`` (the default "prepend" import mode, ``tests/`` having no
``__init__.py``). What users of the plugin use for their own tests (the stub server, tiny
models, the fake clock) stays in ``pytest_gpubench.testing``.
"""
