"""reduce: see the modules of this package; :func:`summarize` is what ``arraystore stats``
prints."""

from arraystore.ops.reduce.summary import MAX_SUMMARY_BINS, summarize

__all__ = ["MAX_SUMMARY_BINS", "summarize"]
