"""Order books rebuilt in silver from ``bronze/book_deltas`` (issue #16).

- ``rebuild.rebuild(deltas, states, gaps)``: the replay of every chain (venue, instrument, channel, session)
  over flat arrays (``kernel``, compiled with numba): per-message outcomes and best levels (the tape the book
  features are computed from; ``msg_depth`` adds the top levels per message), grid samples inside verified
  segments, and each chain's end state;
- ``step.books_pass`` / ``books_step``: the incremental silver step (snapshots, segments, state, features);
- ``query.book_at``: the book as of a time, or the break it falls in (``cryptolake book``).
Modules are imported where used, so importing the package costs nothing.
"""
