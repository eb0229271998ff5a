"""Replay sandbox: run recorded generations and moderation again, locked down.

- ``sandbox.image``: offline build of the replay image (debootstrap rootfs → ``docker import`` →
  ``docker build`` from a local wheelhouse) and the pinned-digest check.
- ``sandbox.runner``: ``Job`` / ``Limits`` / ``RunResult``, ``DockerRunner`` (the real isolation) and
  ``ProcessRunner`` (namespaces via bubblewrap or unshare; weaker, and reported as such).
- ``sandbox.errors``: the sandbox's part of Custody's exception tree; docker SDK errors wrapped.
- ``sandbox.cli_functions``: ``build()`` / ``check()`` behind ``custody sandbox build`` / ``check``.

Nothing here connects to a Docker engine at import time.
"""
