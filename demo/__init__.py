"""``make demo``: labelvault end to end on a local folder store (see :mod:`demo.run`)."""
