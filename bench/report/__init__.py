"""lowbit-bench's report: the suites (catalogue), the records and their bounds
(measure), the text and picture (render, svg), the peers and the self-check."""
