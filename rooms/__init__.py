"""The pure heart of Partsboard: room state, the IFIO stage rules and privacy.

Nothing in this package does I/O. The server, the Python client, the tests and
the export all share it.
"""
