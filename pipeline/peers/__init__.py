"""Peer libraries run on our split and ranked by our evaluator: the accuracy bar a model has to reach."""
