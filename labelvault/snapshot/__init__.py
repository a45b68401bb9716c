"""The version format: Arrow schemas, streaming writer, verified reader, manifests.

A version is a manifest plus content-addressed, content-defined Parquet chunks:

- :class:`SnapshotWriter` streams record batches into chunks under ``<prefix>/chunks/`` and
  returns a :class:`Manifest`;
- :func:`write_manifest` stores it write-once under ``<prefix>/manifests/``,
  :func:`load_manifest` reads and verifies it;
- :class:`SnapshotReader` streams a table back, verifying each chunk's size and sha256.

Import from the modules (:mod:`.schema` for the tables, :mod:`.writer`, :mod:`.reader`,
:mod:`.manifest`): the package itself imports nothing, so the table schemas load without the
storage the writer and reader need.
"""
