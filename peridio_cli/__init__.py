"""The `peridio` command line: artifacts, versions, binaries, parts, signatures and keys
against a Peridio Console (or the hosted platform's API). No Django here: httpx and click."""

__version__ = "0.1.0"
