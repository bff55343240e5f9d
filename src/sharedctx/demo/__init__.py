"""The demo pipeline of ``sharedctx demo``: a small persona-cloning run over sample
sources shipped here (``data/``), with real text statistics instead of AI."""
