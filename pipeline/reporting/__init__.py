"""Reports across evaluated runs: the paper's tables and figures, assembled from runs/ and metrics/."""
